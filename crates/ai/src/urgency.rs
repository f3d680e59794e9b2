//! Urgency cues: words and tone that raise or lower a ticket's priority (outage, data loss, security,
//! "all users", deadlines, shouting; "no rush", feature wishes). A few cues in German, Spanish, French and
//! Portuguese too, since tickets arrive in those.

use crate::triage::PRIORITIES;

/// Phrases that make a ticket urgent on their own.
const CRITICAL: &[&str] = &[
    "outage",
    "is down",
    "are down",
    "went down",
    "site down",
    "service down",
    "server down",
    "data loss",
    "lost data",
    "lost all",
    "data breach",
    "security breach",
    "breach",
    "hacked",
    "ransomware",
    "vulnerability",
    "exploit",
    "all users",
    "all customers",
    "everyone",
    "nobody can",
    "no one can",
    "production down",
    "in production",
    "cannot process payments",
    "payments fail",
    "corrupted",
    "ausfall",
    "datenverlust",
    "caída",
    "panne",
    "interrupção",
];

/// Phrases that raise priority.
const HIGH: &[&str] = &[
    "urgent",
    "urgently",
    "asap",
    "as soon as possible",
    "immediately",
    "critical",
    "emergency",
    "blocker",
    "blocked",
    "blocking",
    "deadline",
    "by tomorrow",
    "by today",
    "today",
    "cannot work",
    "can't work",
    "unable to work",
    "crash",
    "crashes",
    "not working",
    "security",
    "dringend",
    "sofort",
    "urgente",
    "inmediato",
    "immédiatement",
    "imediato",
];

/// Phrases that lower priority.
const LOW: &[&str] = &[
    "no rush",
    "not urgent",
    "when you have time",
    "whenever",
    "would be nice",
    "nice to have",
    "feature request",
    "suggestion",
    "just wondering",
    "curious",
    "question",
    "how do i",
    "how can i",
    "is it possible",
];

/// What the cues say.
#[derive(Debug, Clone, PartialEq)]
pub struct Urgency {
    /// Positive: more urgent than usual; negative: less.
    pub score: f32,
    /// How much the cues say at all, in `[0, 1]`.
    pub strength: f32,
    /// The cues found, for explanations.
    pub cues: Vec<String>,
}

fn contains_phrase(haystack: &str, phrase: &str) -> bool {
    haystack.match_indices(phrase).any(|(i, _)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Reads the cues of `text`.
pub fn assess(text: &str) -> Urgency {
    let lower = text.to_lowercase();
    let mut score = 0.0f32;
    let mut cues = Vec::new();
    // Each list adds its weight per cue found, up to its cap: many "urgent" words do not make an outage.
    for (list, weight, cap) in [(CRITICAL, 2.0f32, 5.0f32), (HIGH, 1.0, 2.0), (LOW, -1.0, 2.0)] {
        let mut part = 0.0f32;
        for phrase in list {
            if contains_phrase(&lower, phrase) {
                part += weight;
                cues.push((*phrase).to_owned());
            }
        }
        score += part.clamp(-cap, cap);
    }
    score = score.clamp(-2.0, 5.0);
    let exclamations = text.matches('!').count();
    let shouted = text.split_whitespace().filter(|w| w.len() >= 4 && w.chars().all(|c| c.is_uppercase())).count();
    if exclamations >= 2 || shouted >= 2 {
        score += 0.5;
        cues.push("tone".into());
    }
    Urgency { score, strength: (score.abs() / 3.0).min(1.0), cues }
}

impl Urgency {
    /// A distribution over [`PRIORITIES`] centred where the score points.
    pub fn distribution(&self) -> Vec<(String, f32)> {
        // Where each priority sits on the score scale.
        let centres = [-1.0f32, 0.0, 1.5, 3.0];
        PRIORITIES
            .iter()
            .zip(centres)
            .map(|(p, c)| ((*p).to_owned(), (-(self.score - c).powi(2) / 1.0).exp() + 0.02))
            .collect()
    }

    /// The priority the cues alone point at.
    pub fn priority(&self) -> &'static str {
        let d = self.distribution();
        let best = d.iter().enumerate().max_by(|a, b| a.1.1.total_cmp(&b.1.1)).map_or(1, |(i, _)| i);
        PRIORITIES[best]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cues_move_priority_both_ways() {
        assert_eq!(assess("The whole site is down for all users, data loss!").priority(), "urgent");
        assert_eq!(assess("Urgent: the export is blocked, deadline today").priority(), "high");
        assert_eq!(assess("The export button is misaligned").priority(), "medium");
        assert_eq!(assess("No rush, just wondering: is it possible to add dark mode?").priority(), "low");
        assert_eq!(assess("Der Server hat einen Ausfall, dringend").priority(), "urgent");
    }

    #[test]
    fn phrases_match_whole_words_only() {
        assert!(!assess("the breachless downtown report").cues.iter().any(|c| c == "breach"));
        assert!(assess("DOWN DOWN the site!!").cues.contains(&"tone".to_owned()));
    }
}
