//! An extractive summary of a ticket's conversation for whoever picks it up: the problem (the first things the
//! requester said), what was tried (sentences that say something was tried, restarted, updated, checked…,
//! in the five languages), and what is asked now (the newest question, and who asked it). Sentences are taken
//! as written, never rewritten; greetings, sign-offs and quoted mail are left out.

/// One message of the conversation, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    /// Written by the ticket's requester (else by the team).
    pub by_requester: bool,
    pub text: &'a str,
}

/// What the conversation comes to.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub problem: String,
    /// At most [`MAX_TRIED`], in the order they were said.
    pub tried: Vec<String>,
    /// The newest question, if the newest messages ask one.
    pub asked: Option<Asked>,
}

/// A question and who asked it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Asked {
    pub by_requester: bool,
    pub text: String,
}

/// Sentences of "what was tried" kept at most.
pub const MAX_TRIED: usize = 4;
/// Characters of one sentence kept at most.
const MAX_SENTENCE: usize = 240;

/// Word starts that say something was tried (lower case; matched at the start of a word).
const TRIED: &[&str] = &[
    // English
    "tried",
    "try ",
    "trying",
    "restart",
    "rebooted",
    "reboot",
    "reinstall",
    "cleared",
    "clear ",
    "reset",
    "updated",
    "upgrade",
    "checked",
    "already",
    "did not help",
    "didn't help",
    "still ",
    "turned off",
    "switched",
    // German
    "versucht",
    "probiert",
    "neu gestartet",
    "neugestartet",
    "neu installiert",
    "bereits",
    "schon ",
    "gelöscht",
    "aktualisiert",
    "geprüft",
    "hat nicht geholfen",
    "immer noch",
    // French
    "essayé",
    "redémarré",
    "réinstallé",
    "déjà",
    "vidé",
    "mis à jour",
    "vérifié",
    "toujours ",
    "n'a pas aidé",
    // Spanish
    "intenté",
    "he intentado",
    "probé",
    "reinicié",
    "reinstalé",
    "ya ",
    "borré",
    "actualicé",
    "comprobé",
    "sigue ",
    "no ayudó",
    // Portuguese
    "tentei",
    "reiniciei",
    "reinstalei",
    "já ",
    "limpei",
    "atualizei",
    "verifiquei",
    "continua ",
    "não ajudou",
];

/// First words of lines that greet or sign off (lower case).
const CIVILITIES: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "dear",
    "thanks",
    "thank you",
    "regards",
    "best",
    "kind regards",
    "cheers",
    "hallo",
    "guten tag",
    "liebe",
    "lieber",
    "danke",
    "viele grüße",
    "mit freundlichen",
    "bonjour",
    "merci",
    "cordialement",
    "hola",
    "gracias",
    "saludos",
    "olá",
    "ola",
    "obrigado",
    "obrigada",
    "atenciosamente",
];

/// The summary of a ticket titled `title`, described by `description`, answered in `turns`.
pub fn summarize(title: &str, description: &str, turns: &[Turn<'_>]) -> Summary {
    let opening = sentences(description);
    let problem = match opening.first() {
        Some(first) if !title.trim().is_empty() => format!("{}: {first}", title.trim()),
        Some(first) => first.clone(),
        None => title.trim().to_owned(),
    };
    let all: Vec<Turn<'_>> =
        std::iter::once(Turn { by_requester: true, text: description }).chain(turns.iter().copied()).collect();
    let mut tried: Vec<String> = Vec::new();
    for turn in &all {
        for s in sentences(turn.text) {
            if tried.len() < MAX_TRIED && says_tried(&s) && !tried.contains(&s) && !s.ends_with('?') {
                tried.push(s);
            }
        }
    }
    Summary { problem, tried, asked: newest_question(&all) }
}

/// The newest message's last question (a message without one asks nothing: the newest word is an answer).
fn newest_question(all: &[Turn<'_>]) -> Option<Asked> {
    let last = all.iter().rev().find(|t| !sentences(t.text).is_empty())?;
    let question = sentences(last.text).into_iter().rev().find(|s| s.ends_with('?'))?;
    Some(Asked { by_requester: last.by_requester, text: question })
}

fn says_tried(sentence: &str) -> bool {
    let lower = format!(" {} ", sentence.to_lowercase());
    TRIED.iter().any(|t| lower.contains(&format!(" {t}")))
}

/// The sentences of `text` that say something: quoted lines, signatures, greetings and sign-offs left out.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line == "--" || line.starts_with("-- ") {
            break;
        }
        if line.is_empty() || line.starts_with('>') || is_civility(line) {
            continue;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut current = String::new();
        for (i, &c) in chars.iter().enumerate() {
            current.push(c);
            let ends = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
            // "the 3. floor", "v2.1", "e.g." go on: a full stop after a digit or a single letter ends nothing.
            let after_word = i >= 2 && chars[i - 1].is_alphabetic() && chars[i - 2].is_alphabetic();
            if ends && (matches!(c, '!' | '?') || (c == '.' && after_word)) {
                push_sentence(&mut out, &current);
                current.clear();
            }
        }
        push_sentence(&mut out, &current);
    }
    out
}

fn push_sentence(out: &mut Vec<String>, raw: &str) {
    let s = raw.trim();
    if s.chars().filter(|c| c.is_alphanumeric()).count() >= 3 {
        let mut kept: String = s.chars().take(MAX_SENTENCE).collect();
        if kept.len() < s.len() {
            kept.push('…');
        }
        out.push(kept);
    }
}

/// A line that only greets or signs off: starts with a civility and says little more.
fn is_civility(line: &str) -> bool {
    let lower = line.to_lowercase();
    let words = lower.split_whitespace().count();
    words <= 6
        && CIVILITIES
            .iter()
            .any(|c| lower.starts_with(c) && lower[c.len()..].chars().next().is_none_or(|n| !n.is_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_problem_what_was_tried_and_what_is_asked() {
        let description = "Hello team,\n\nOutlook stopped syncing my calendar on Monday. Meetings I accept on my \
                           phone never show up.\nI already restarted Outlook twice.\n\nThanks,\nAnn";
        let turns = [
            Turn { by_requester: false, text: "Could you remove and re-add the account?" },
            Turn { by_requester: true, text: "I tried removing the account, it did not help.\n> Could you remove" },
            Turn { by_requester: false, text: "We reset your mailbox cache. Does it sync now?" },
        ];
        let s = summarize("Outlook calendar not syncing", description, &turns);
        assert_eq!(s.problem, "Outlook calendar not syncing: Outlook stopped syncing my calendar on Monday.");
        assert_eq!(
            s.tried,
            [
                "I already restarted Outlook twice.",
                "I tried removing the account, it did not help.",
                "We reset your mailbox cache."
            ]
        );
        assert_eq!(s.asked, Some(Asked { by_requester: false, text: "Does it sync now?".into() }));
    }

    #[test]
    fn a_german_conversation_and_an_answer_that_asks_nothing() {
        let description = "Guten Tag,\nder Drucker im 3. Stock druckt nur leere Seiten. Ich habe ihn schon neu \
                           gestartet.\nViele Grüße";
        let turns = [Turn { by_requester: true, text: "Der Toner wurde bereits gewechselt. Was kann ich noch tun?" }];
        let s = summarize("Drucker druckt leere Seiten", description, &turns);
        assert_eq!(s.tried, ["Ich habe ihn schon neu gestartet.", "Der Toner wurde bereits gewechselt."]);
        assert_eq!(s.asked.map(|a| (a.by_requester, a.text)), Some((true, "Was kann ich noch tun?".into())));
        let answered = [Turn { by_requester: false, text: "Wir tauschen die Trommel heute aus." }];
        assert_eq!(summarize("Drucker", description, &answered).asked, None);
    }
}
