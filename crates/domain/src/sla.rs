//! Service levels: how soon a ticket of each priority must get a response.

use crate::Priority;

/// The response time per priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sla {
    pub urgent: chrono::Duration,
    pub high: chrono::Duration,
    pub medium: chrono::Duration,
    pub low: chrono::Duration,
}

impl Default for Sla {
    fn default() -> Self {
        let h = chrono::Duration::hours;
        Self { urgent: h(1), high: h(4), medium: h(24), low: h(72) }
    }
}

impl Sla {
    pub fn for_priority(&self, p: Priority) -> chrono::Duration {
        match p {
            Priority::Urgent => self.urgent,
            Priority::High => self.high,
            Priority::Medium => self.medium,
            Priority::Low => self.low,
        }
    }
}
