//! The note for the moderator: deterministic and grounded, built only from the ticket's own words, the past
//! tickets it resembles and a checklist for its category. Nothing in it is invented.

use crate::triage::Neighbour;

/// Specifics quoted verbatim from a ticket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Specifics {
    /// Lines that report an error.
    pub errors: Vec<String>,
    /// Error codes such as `E1234`, `ORA-00942`, `0x80070005`, `ERR_CONNECTION_REFUSED`, `HTTP 502`.
    pub codes: Vec<String>,
    /// Product or component names with a version, such as `PostgreSQL 15.2` or `v2.3.1`.
    pub versions: Vec<String>,
    pub urls: Vec<String>,
}

const ERROR_WORDS: &[&str] =
    &["error", "exception", "failed", "failure", "fatal", "traceback", "panic", "denied", "refused", "timeout"];

fn push_unique(list: &mut Vec<String>, item: String, max: usize) {
    if list.len() < max && !list.iter().any(|x| x.eq_ignore_ascii_case(&item)) {
        list.push(item);
    }
}

fn clip(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max - 1).collect();
    format!("{}…", cut.trim_end())
}

fn trim_punct(token: &str) -> &str {
    token.trim_matches(|c: char| matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | '(' | ')' | '"' | '\'' | '[' | ']'))
}

fn is_version(token: &str) -> bool {
    let t = token.strip_prefix(['v', 'V']).unwrap_or(token);
    let parts: Vec<&str> = t.split('.').collect();
    parts.len() >= 2 && parts.len() <= 4 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn is_code(token: &str) -> bool {
    let has_digit = token.chars().any(|c| c.is_ascii_digit());
    let has_upper = token.chars().any(|c| c.is_ascii_uppercase());
    let all_ok = token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let hex = token.len() >= 6 && token.starts_with("0x") && token[2..].chars().all(|c| c.is_ascii_hexdigit());
    let shouty = token.len() >= 6 && token.contains('_') && token.chars().all(|c| c.is_ascii_uppercase() || c == '_');
    hex || shouty
        || (all_ok && has_digit && has_upper && token.len() >= 4 && !token.chars().all(|c| c.is_ascii_digit()))
}

/// Pulls error lines, codes, versions and URLs out of `text`.
pub fn specifics(text: &str) -> Specifics {
    let mut s = Specifics::default();
    for line in text.lines() {
        let lower = line.to_lowercase();
        if ERROR_WORDS.iter().any(|w| lower.contains(w)) && line.trim().len() >= 8 {
            push_unique(&mut s.errors, clip(line, 160), 3);
        }
    }
    let tokens: Vec<&str> = text.split_whitespace().collect();
    for (i, raw) in tokens.iter().enumerate() {
        if raw.starts_with("http://") || raw.starts_with("https://") {
            let url = raw.trim_end_matches(['.', ',', ';', ')', '!', '?', '"', '\'', '>']);
            push_unique(&mut s.urls, url.to_owned(), 5);
            continue;
        }
        let t = trim_punct(raw);
        if is_version(t) {
            let prev = i.checked_sub(1).map(|j| trim_punct(tokens[j])).filter(|p| {
                p.chars().next().is_some_and(char::is_alphabetic) && p.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
            let item = match prev {
                Some(p) if !t.starts_with(['v', 'V']) => format!("{p} {t}"),
                _ => t.to_owned(),
            };
            push_unique(&mut s.versions, item, 5);
        } else if is_code(t) {
            push_unique(&mut s.codes, t.to_owned(), 5);
        } else if let Some(next) = tokens.get(i + 1).map(|n| trim_punct(n))
            && matches!(t.to_lowercase().as_str(), "http" | "status" | "error")
            && next.len() == 3
            && next.chars().all(|c| c.is_ascii_digit())
            && matches!(next.as_bytes()[0], b'4' | b'5')
        {
            push_unique(&mut s.codes, format!("{} {next}", t.to_uppercase()), 5);
        }
    }
    s
}

/// What to check first, per category of the default taxonomy; a generic list for the others.
pub fn checklist(category: Option<&str>) -> &'static [&'static str] {
    match category.map(str::to_lowercase).as_deref() {
        Some("bug") => &[
            "Reproduce it with the steps, version and environment given",
            "Look up the error message or code in the logs",
            "Check whether a recent release or configuration change introduced it",
        ],
        Some("incident") => &[
            "Confirm the impact: who is affected, since when",
            "Check monitoring, recent deploys and status of dependencies",
            "Post a status update and escalate if it is still ongoing",
        ],
        Some("account & access") => &[
            "Verify the requester's identity before changing anything",
            "Check the account's status, roles and recent sign-in failures",
            "Confirm that password-reset and invitation mails are delivered",
        ],
        Some("billing") => &[
            "Find the invoice or payment referred to",
            "Compare the charge with the plan and its billing period",
            "Agree any refund or credit in writing",
        ],
        Some("feature request") => &[
            "Restate the need behind the request",
            "Check for an existing feature, workaround or open request",
            "Tell the requester how requests are prioritised",
        ],
        Some("how-to") => &[
            "Point to the documentation page that answers it",
            "Give the exact steps for the requester's plan and version",
            "Check whether the docs need improving",
        ],
        Some("question") => &["Answer the question asked", "Link the policy or page that backs the answer"],
        _ => &[
            "Confirm you understand what the requester needs",
            "Look for similar resolved tickets",
            "Agree the next step and tell the requester",
        ],
    }
}

/// The first sentence (or line) of `text`, clipped.
fn first_sentence(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| l.len() >= 3).unwrap_or("");
    let end = line
        .char_indices()
        .find(|&(i, c)| matches!(c, '.' | '!' | '?') && line[i + c.len_utf8()..].starts_with(char::is_whitespace));
    clip(end.map_or(line, |(i, c)| &line[..i + c.len_utf8()]), 160)
}

/// The note: summary, specifics, the closest resolved tickets and how each was resolved, and a checklist.
pub fn compose(title: &str, description: &str, category: Option<&str>, similar: &[Neighbour]) -> String {
    let mut out = String::new();
    let lead = first_sentence(description);
    let summary = if lead.is_empty() || lead.eq_ignore_ascii_case(title.trim()) {
        clip(title, 160)
    } else {
        format!("{} — {}", clip(title, 100), lead)
    };
    out.push_str(&format!("Summary: {summary}\n"));
    let s = specifics(&format!("{title}\n{description}"));
    let mut facts = Vec::new();
    s.errors.iter().for_each(|e| facts.push(format!("Error: {e}")));
    if !s.codes.is_empty() {
        facts.push(format!("Codes: {}", s.codes.join(", ")));
    }
    if !s.versions.is_empty() {
        facts.push(format!("Versions: {}", s.versions.join(", ")));
    }
    if !s.urls.is_empty() {
        facts.push(format!("URLs: {}", s.urls.join(" ")));
    }
    if !facts.is_empty() {
        out.push_str("Specifics:\n");
        facts.iter().for_each(|f| out.push_str(&format!("- {f}\n")));
    }
    let resolved: Vec<&Neighbour> = similar.iter().filter(|n| n.past.resolution.is_some()).take(3).collect();
    if !resolved.is_empty() {
        out.push_str("Similar resolved tickets:\n");
        for n in resolved {
            let how = n.past.resolution.as_deref().map(first_sentence).unwrap_or_default();
            out.push_str(&format!(
                "- #{} ({:.0}% similar) {}: {}\n",
                n.past.number,
                n.similarity.clamp(0.0, 1.0) * 100.0,
                clip(&n.past.title, 80),
                how
            ));
        }
    }
    out.push_str(&format!("Checklist ({}):\n", category.unwrap_or("uncategorised")));
    checklist(category).iter().for_each(|c| out.push_str(&format!("- {c}\n")));
    out.trim_end().to_owned()
}

/// Words too common to explain a match.
const STOPWORDS: &[&str] = &[
    "about", "after", "again", "also", "because", "been", "before", "cannot", "could", "does", "doesn", "from", "have",
    "hello", "help", "here", "into", "just", "more", "need", "please", "since", "some", "still", "than", "thank",
    "thanks", "that", "their", "them", "then", "there", "these", "they", "this", "when", "where", "which", "while",
    "with", "would", "your",
];

/// Words of four letters or more (not stop words) that both texts use, in the order of `a`, at most `max`.
pub fn shared_terms(a: &str, b: &str, max: usize) -> Vec<String> {
    let theirs: std::collections::HashSet<String> = crate::text::words(b).into_iter().collect();
    let mut out: Vec<String> = Vec::new();
    for w in crate::text::words(a) {
        if w.chars().count() >= 4 && !STOPWORDS.contains(&w.as_str()) && theirs.contains(&w) && !out.contains(&w) {
            out.push(w);
            if out.len() == max {
                break;
            }
        }
    }
    out
}

/// A reply the moderator can start from, composed only from how the given resolved tickets were resolved
/// (most similar first), with their cited numbers beside it. The reply goes to another customer, so it carries
/// none of those tickets' titles, numbers or requesters: only the first instruction of each resolution, with
/// personal data removed ([`crate::pii::scrub`], `names` being the words that name their requesters).
/// `None` without any resolved ticket.
pub fn draft_reply(similar: &[Neighbour], names: &[&str]) -> Option<(String, Vec<i64>)> {
    let used: Vec<&Neighbour> = similar.iter().filter(|n| n.past.resolution.is_some()).take(2).collect();
    let instruction =
        |n: &Neighbour| crate::pii::scrub(&first_sentence(n.past.resolution.as_deref().unwrap_or_default()), names);
    let first = used.first()?;
    let mut text = String::from("Hello,\n\nthank you for your message. ");
    text.push_str(&format!("In a similar case this solved it: {}", instruction(first)));
    if let Some(second) = used.get(1) {
        text.push_str(&format!("\n\nIn another one, this helped: {}", instruction(second)));
    }
    text.push_str("\n\nCould you try this and tell us whether it solves the problem?");
    Some((text, used.iter().map(|n| n.past.number).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::{Past, Repr};

    #[test]
    fn drafts_cite_the_resolved_tickets_they_use() {
        let a = Past {
            number: 4,
            title: "VPN drops hourly".into(),
            resolution: Some("Raised the idle timeout to 8 h. Done.".into()),
            ..Default::default()
        };
        let b = Past {
            number: 9,
            title: "VPN slow".into(),
            resolution: Some("Switched to the EU gateway.".into()),
            ..Default::default()
        };
        let open = Past { number: 11, resolution: None, ..Default::default() };
        let near = [
            Neighbour { past: &open, similarity: 0.99 },
            Neighbour { past: &a, similarity: 0.9 },
            Neighbour { past: &b, similarity: 0.8 },
        ];
        let (text, cited) = draft_reply(&near, &[]).unwrap();
        assert_eq!(cited, [4, 9]);
        assert!(text.contains("this solved it: Raised the idle timeout to 8 h."), "{text}");
        assert!(text.contains("another one, this helped: Switched to the EU gateway."), "{text}");
        assert!(!text.contains("#4") && !text.contains("VPN drops hourly"), "no number or title inside: {text}");
        assert!(draft_reply(&near[..1], &[]).is_none(), "nothing resolved, nothing drafted");
        let secret = Past {
            number: 5,
            resolution: Some("Reset usera's password to hunter2-SECRET-ALPHA on vpn-int.corp.".into()),
            ..Default::default()
        };
        let (text, _) = draft_reply(&[Neighbour { past: &secret, similarity: 0.9 }], &["usera"]).unwrap();
        for leak in ["usera", "hunter2", "SECRET-ALPHA", "vpn-int.corp"] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
        assert_eq!(
            shared_terms("The VPN gateway drops every hour", "vpn gateway timeout, drops", 5),
            ["gateway", "drops"]
        );
    }

    #[test]
    fn specifics_are_quoted_from_the_text() {
        let s = specifics(
            "After upgrading to PostgreSQL 15.2 the app fails.\nERROR: relation \"users\" does not exist (SQLSTATE 42P01)\n\
             See https://status.example.com/incidents/42. Client v2.3.1 shows ERR_CONNECTION_REFUSED and HTTP 502, \
             then 0x80070005.",
        );
        assert_eq!(s.versions, ["PostgreSQL 15.2", "v2.3.1"]);
        assert_eq!(s.urls, ["https://status.example.com/incidents/42"]);
        assert!(s.codes.contains(&"42P01".to_owned()), "{s:?}");
        assert!(s.codes.contains(&"ERR_CONNECTION_REFUSED".to_owned()), "{s:?}");
        assert!(s.codes.contains(&"HTTP 502".to_owned()), "{s:?}");
        assert!(s.codes.contains(&"0x80070005".to_owned()), "{s:?}");
        assert_eq!(s.errors.len(), 2, "{s:?}");
        assert_eq!(specifics("Please add dark mode to the dashboard."), Specifics::default());
    }

    #[test]
    fn the_note_cites_resolved_tickets_and_invents_nothing() {
        let past = Past {
            number: 12,
            title: "Export fails with error 500".into(),
            resolution: Some("Cleared the export cache. Then it worked.".into()),
            repr: Repr::new("x", None),
            ..Default::default()
        };
        let unresolved = Past { number: 13, ..past.clone() };
        let unresolved = Past { resolution: None, ..unresolved };
        let similar = [Neighbour { past: &past, similarity: 0.91 }, Neighbour { past: &unresolved, similarity: 0.9 }];
        let note = compose("Export broken", "The CSV export fails. It worked yesterday.", Some("bug"), &similar);
        assert!(note.starts_with("Summary: Export broken — The CSV export fails."), "{note}");
        assert!(note.contains("- #12 (91% similar) Export fails with error 500: Cleared the export cache."), "{note}");
        assert!(!note.contains("#13"), "unresolved tickets are not cited: {note}");
        assert!(note.contains("Checklist (bug):\n- Reproduce it"), "{note}");
        assert!(!note.contains("Specifics"), "nothing to quote: {note}");
        assert_eq!(note, compose("Export broken", "The CSV export fails. It worked yesterday.", Some("bug"), &similar));
    }
}
