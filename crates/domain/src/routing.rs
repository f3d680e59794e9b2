//! Choosing who works a ticket: the moderator whose skills best cover what the ticket needs (weighted by how
//! sure the AI is of each skill), minus how loaded they already are; nobody away or at capacity; ties to
//! whoever was assigned least recently. When no moderator fits, the least-loaded admin.
//!
//! Pure: the caller reads the candidates and writes the decision in one transaction.

use crate::Role;

use crate::{Ts, UserId};

/// A person who could take the ticket, with their current load.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    pub skills: Vec<String>,
    pub away: bool,
    /// Most open tickets they take at once.
    pub capacity: i64,
    /// Open or in-progress tickets assigned to them.
    pub open: i64,
    /// The same, each weighted by its priority (urgent counts more).
    pub weighted_load: i64,
    pub last_assigned_at: Option<Ts>,
}

/// The choice and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub assignee: UserId,
    pub email: String,
    /// E.g. "matched rust, postgres; load 2/8".
    pub reason: String,
}

/// How much the load counts against skill overlap: a fully loaded moderator loses one matched skill's worth.
const LOAD_PENALTY: f64 = 1.0;

fn normalise(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Whether two skill names differ by at most one edit (insert, delete or substitute).
fn one_edit_apart(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() { (&a, &b) } else { (&b, &a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short.iter().zip(long.iter()).take_while(|(x, y)| x == y).count();
    if short.len() == long.len() {
        short[prefix + 1.min(short.len() - prefix)..] == long[prefix + 1.min(long.len() - prefix)..]
    } else {
        short[prefix..] == long[prefix + 1..]
    }
}

/// How well a person's skill covers a needed one: 1 for the same name (ignoring case and punctuation),
/// 0.8 for a near match (one a prefix of the other, at least four letters and at most three more, like
/// "postgres"/"postgresql" but not "java"/"javascript"; or one typo apart, at least five letters), else 0. Plain string comparison: nothing from AI output is
/// ever interpreted as a pattern.
pub fn skill_match(needed: &str, has: &str) -> f64 {
    let (n, h) = (normalise(needed), normalise(has));
    if n.is_empty() || h.is_empty() {
        return 0.0;
    }
    if n == h {
        return 1.0;
    }
    let (short, long) = if n.len() <= h.len() { (&n, &h) } else { (&h, &n) };
    let extra = long.chars().count() - short.chars().count();
    if (short.chars().count() >= 4 && extra <= 3 && long.starts_with(short.as_str()))
        || (short.chars().count() >= 5 && one_edit_apart(&n, &h))
    {
        0.8
    } else {
        0.0
    }
}

/// Picks the assignee for a ticket needing `skills` (name, AI confidence). `None` when nobody can take it.
pub fn choose(skills: &[(String, f64)], candidates: &[Candidate]) -> Option<Decision> {
    let available = |c: &&Candidate| !c.away && c.open < c.capacity;
    let mut best: Option<(f64, &Candidate, Vec<&str>)> = None;
    for c in candidates.iter().filter(|c| c.role == Role::Moderator).filter(available) {
        let mut overlap = 0.0;
        let mut matched = Vec::new();
        for (need, confidence) in skills {
            let m = c.skills.iter().map(|h| skill_match(need, h)).fold(0.0, f64::max);
            if m > 0.0 {
                overlap += m * confidence.clamp(0.0, 1.0);
                matched.push(need.as_str());
            }
        }
        if matched.is_empty() {
            continue;
        }
        let score = overlap - LOAD_PENALTY * c.weighted_load as f64 / (c.capacity.max(1) as f64 * 2.0);
        let better = match &best {
            None => true,
            // Ties: the least recently assigned (never assigned sorts first: `None < Some`).
            Some((s, b, _)) => {
                score > *s + 1e-9 || ((score - *s).abs() <= 1e-9 && c.last_assigned_at < b.last_assigned_at)
            }
        };
        if better {
            best = Some((score, c, matched));
        }
    }
    if let Some((_, c, matched)) = best {
        return Some(Decision {
            assignee: c.id,
            email: c.email.clone(),
            reason: format!("matched {}; load {}/{}", matched.join(", "), c.open, c.capacity),
        });
    }
    // Nobody's skills fit: the least-loaded admin (available ones first), ties to the least recently assigned.
    let admins: Vec<&Candidate> = candidates.iter().filter(|c| c.role == Role::Admin).collect();
    let pool: Vec<&Candidate> =
        if admins.iter().any(available) { admins.iter().copied().filter(available).collect() } else { admins };
    let admin = pool.into_iter().min_by_key(|a| (a.weighted_load, a.last_assigned_at))?;
    let why = if skills.is_empty() { "no skills identified" } else { "no available moderator has the skills" };
    Some(Decision {
        assignee: admin.id,
        email: admin.email.clone(),
        reason: format!("{why}; least-loaded admin, load {}/{}", admin.open, admin.capacity),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(name: &str, role: Role, skills: &[&str], open: i64, weighted: i64) -> Candidate {
        Candidate {
            id: UserId(uuid::Uuid::from_u128(
                name.bytes().fold(0u128, |h, b| h.wrapping_mul(131).wrapping_add(u128::from(b))),
            )),
            email: format!("{name}@example.com"),
            role,
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            away: false,
            capacity: 8,
            open,
            weighted_load: weighted,
            last_assigned_at: None,
        }
    }

    fn need(skills: &[(&str, f64)]) -> Vec<(String, f64)> {
        skills.iter().map(|(s, c)| ((*s).to_owned(), *c)).collect()
    }

    fn who(d: Option<Decision>) -> String {
        d.map(|d| d.email.trim_end_matches("@example.com").to_owned()).unwrap_or_default()
    }

    #[test]
    fn skill_names_match_exactly_or_nearly() {
        let cases = [
            ("Rust", "rust", 1.0),
            ("node.js", "NodeJS", 1.0),
            ("postgres", "PostgreSQL", 0.8),
            ("kubernets", "kubernetes", 0.8),
            ("go", "golang", 0.0),
            ("sql", "mysql", 0.0),
            ("java", "javascript", 0.0),
            (".*", "rust", 0.0),
            ("", "rust", 0.0),
        ];
        for (a, b, want) in cases {
            assert_eq!(skill_match(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn routing_table() {
        let ann = || person("ann", Role::Moderator, &["rust", "postgres"], 2, 4);
        let bob = || person("bob", Role::Moderator, &["billing"], 0, 0);
        let cat = || person("cat", Role::Moderator, &["rust"], 0, 0);
        let root = || person("root", Role::Admin, &[], 5, 10);
        let boss = || person("boss", Role::Admin, &[], 1, 2);
        struct Case {
            name: &'static str,
            skills: Vec<(String, f64)>,
            people: Vec<Candidate>,
            want: &'static str,
        }
        let away = |mut c: Candidate| {
            c.away = true;
            c
        };
        let full = |mut c: Candidate| {
            c.open = c.capacity;
            c
        };
        let cases = vec![
            Case {
                name: "best overlap",
                skills: need(&[("rust", 0.9), ("postgres", 0.8)]),
                people: vec![ann(), bob(), cat(), root()],
                want: "ann",
            },
            Case {
                name: "load breaks a one-skill tie",
                skills: need(&[("rust", 0.9)]),
                people: vec![ann(), cat(), root()],
                want: "cat",
            },
            Case {
                name: "confidence weighs skills",
                skills: need(&[("billing", 0.9), ("rust", 0.3)]),
                people: vec![bob(), cat(), root()],
                want: "bob",
            },
            Case {
                name: "away is skipped",
                skills: need(&[("rust", 0.9), ("postgres", 0.9)]),
                people: vec![away(ann()), cat(), root()],
                want: "cat",
            },
            Case {
                name: "at capacity is skipped",
                skills: need(&[("rust", 0.9), ("postgres", 0.9)]),
                people: vec![full(ann()), cat(), root()],
                want: "cat",
            },
            Case {
                name: "no match: least-loaded admin",
                skills: need(&[("kotlin", 0.9)]),
                people: vec![ann(), bob(), root(), boss()],
                want: "boss",
            },
            Case { name: "no skills: admin", skills: vec![], people: vec![ann(), root()], want: "root" },
            Case {
                name: "near match counts",
                skills: need(&[("postgresql", 0.9)]),
                people: vec![ann(), bob(), root()],
                want: "ann",
            },
            Case {
                name: "admins are not skill-matched",
                skills: need(&[("rust", 0.9)]),
                people: vec![person("adm", Role::Admin, &["rust"], 9, 30), boss()],
                want: "boss",
            },
            Case { name: "nobody at all", skills: need(&[("rust", 0.9)]), people: vec![], want: "" },
        ];
        for c in cases {
            assert_eq!(who(choose(&c.skills, &c.people)), c.want, "{}", c.name);
        }
    }

    #[test]
    fn ties_go_to_the_least_recently_assigned() {
        let mut a = person("a", Role::Moderator, &["rust"], 0, 0);
        let mut b = person("b", Role::Moderator, &["rust"], 0, 0);
        a.last_assigned_at = Some(Ts(chrono::DateTime::from_timestamp(2_000, 0).unwrap()));
        b.last_assigned_at = Some(Ts(chrono::DateTime::from_timestamp(1_000, 0).unwrap()));
        assert_eq!(who(choose(&need(&[("rust", 1.0)]), &[a.clone(), b.clone()])), "b");
        b.last_assigned_at = None;
        a.last_assigned_at = None;
        let never = person("c", Role::Moderator, &["rust"], 0, 0);
        a.last_assigned_at = Some(Ts(chrono::DateTime::from_timestamp(1, 0).unwrap()));
        assert_eq!(who(choose(&need(&[("rust", 1.0)]), &[a, never])), "c", "never assigned goes first");
    }

    #[test]
    fn the_reason_names_the_match_and_the_load() {
        let d = choose(
            &need(&[("rust", 0.9), ("postgres", 0.7)]),
            &[person("ann", Role::Moderator, &["Rust", "postgresql"], 2, 4)],
        );
        assert_eq!(d.unwrap().reason, "matched rust, postgres; load 2/8");
    }
}
