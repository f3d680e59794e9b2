//! Personal and ticket-specific data taken out of text written for someone else: a drafted reply built from
//! another customer's resolution, or (later) an article. What it removes is replaced by a bracketed word
//! (`[email]`, `[name]`, …) so the person editing the draft sees where something was.

use regex::{Captures, Regex};
use std::sync::OnceLock;

/// File endings that make `name.ext` a file rather than a host name.
const FILE_ENDINGS: &[&str] = &[
    "txt", "log", "json", "yaml", "yml", "xml", "csv", "tsv", "ini", "cfg", "conf", "toml", "md", "html", "htm", "css",
    "js", "ts", "py", "rs", "go", "java", "rb", "php", "sh", "bat", "ps1", "exe", "dll", "msi", "so", "dmg", "pkg",
    "deb", "rpm", "zip", "gz", "tar", "tgz", "7z", "rar", "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "png",
    "jpg", "jpeg", "gif", "svg", "webp", "mp4", "mov", "mp3", "wav", "db", "sql", "bak", "tmp", "pst", "ost",
];

/// Words after which the next word is a secret (a password, a key, a one-time code).
const SECRET_WORDS: &str = r"(?i:password|passwort|contraseña|senha|mot de passe|passwd|pwd|passphrase|passcode|pin|token|secret|(?:api|license|licence|product|access|secret|recovery) key|otp|(?:one-time|verification|security|access) code)";

/// Words that follow a secret word without being the secret ("reset the password in the portal").
const NOT_SECRETS: &[&str] = &[
    "the", "a", "an", "your", "their", "his", "her", "our", "my", "its", "and", "or", "for", "of", "in", "on", "at",
    "via", "with", "by", "from", "it", "this", "that", "again", "field", "policy", "reset", "manager", "expired",
];

/// Mailbox names that are no person's name.
const ROLE_NAMES: &[&str] = &[
    "admin",
    "administrator",
    "support",
    "info",
    "help",
    "helpdesk",
    "contact",
    "sales",
    "billing",
    "team",
    "office",
    "user",
    "mail",
    "noreply",
    "no-reply",
    "service",
    "root",
    "webmaster",
    "postmaster",
    "hello",
    "accounts",
];

struct Patterns {
    email: Regex,
    link: Regex,
    ipv4: Regex,
    uuid: Regex,
    ticket: Regex,
    phone: Regex,
    long_number: Regex,
    secret_after_word: Regex,
    date: Regex,
    greeting: Regex,
    sign_off: Regex,
    honorific: Regex,
    host: Regex,
    token: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).unwrap_or_else(|e| panic!("pii pattern {s}: {e}"));
        Patterns {
            email: re(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+"),
            link: re(r"(?i)\b(?:https?|ftp|smb|file)://[^\s<>]+|\bwww\.[^\s<>]+"),
            ipv4: re(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"),
            uuid: re(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
            ticket: re(r"#\d+\b"),
            // Seven or more digits with the separators phone numbers are written with; dates are not phones.
            phone: re(r"(?:\+|\(|\b)\d[\d \-().]{5,}\d\b"),
            date: re(r"\d{4}-\d{2}-\d{2}"),
            long_number: re(r"\b\d{6,}\b"),
            secret_after_word: re(&format!(
                r"(\b{SECRET_WORDS}\b)(\s+(?:is|was|to|as|now|set to|changed to|reset to)\s+|\s*[:=]\s*|\s+)([^\s,;]+)"
            )),
            greeting: re(
                r"\b((?:[Hh]i|[Hh]ello|[Hh]ey|[Dd]ear|[Hh]allo|[Hh]ola|[Oo]lá|[Bb]onjour),?[ \t]+)(\p{Lu}[\p{L}'-]+(?:[ \t]+\p{Lu}[\p{L}'-]+)?)",
            ),
            sign_off: re(
                r"\b((?:[Tt]hanks|[Tt]hank you|[Rr]egards|[Cc]heers|[Ss]incerely|[Bb]est|[Gg]reetings),[ \t]*\n?[ \t]*)(\p{Lu}[\p{L}'-]+(?:[ \t]+\p{Lu}[\p{L}'-]+)?)",
            ),
            honorific: re(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Herr|Frau|Sr|Sra|Mme)\.?\s+\p{Lu}[\p{L}'-]+"),
            host: re(r"\b[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+\b"),
            token: re(r"[^\s,;:()\[\]<>]+"),
        }
    })
}

/// `text` with e-mail addresses, links, IP addresses, host names, phone numbers, long numbers, ticket
/// numbers, ids, secrets (after words like "password", and credential-looking strings) and names of people
/// (after a greeting or a title, and every word of `names`: the people the text came from) replaced.
pub fn scrub(text: &str, names: &[&str]) -> String {
    let p = patterns();
    let mut out = p.email.replace_all(text, "[email]").into_owned();
    out = p.link.replace_all(&out, "[link]").into_owned();
    out = p.uuid.replace_all(&out, "[id]").into_owned();
    out = p.ipv4.replace_all(&out, "[address]").into_owned();
    out = p.secret_after_word.replace_all(&out, secret_after_word).into_owned();
    out = p.phone.replace_all(&out, |c: &Captures| phone_or_keep(&c[0], &p.date)).into_owned();
    out = p.long_number.replace_all(&out, "[number]").into_owned();
    out = p.ticket.replace_all(&out, "[ticket]").into_owned();
    out = p.host.replace_all(&out, |c: &Captures| host_or_keep(&c[0])).into_owned();
    out = p.token.replace_all(&out, |c: &Captures| secret_or_keep(&c[0])).into_owned();
    out = p.greeting.replace_all(&out, |c: &Captures| format!("{}[name]", &c[1])).into_owned();
    out = p.sign_off.replace_all(&out, |c: &Captures| format!("{}[name]", &c[1])).into_owned();
    out = p.honorific.replace_all(&out, "[name]").into_owned();
    remove_names(&out, names)
}

/// The word after a secret word is the secret when a connector ("is", "to", ":") says so or it has a digit.
fn secret_after_word(c: &Captures) -> String {
    let (word, connector, value) = (&c[1], &c[2], &c[3]);
    let said = !connector.trim().is_empty();
    let looks = value.chars().any(|ch| ch.is_ascii_digit());
    if (said || looks) && !NOT_SECRETS.contains(&value.to_lowercase().as_str()) && !value.starts_with('[') {
        format!("{word}{connector}[secret]")
    } else {
        c[0].to_owned()
    }
}

/// A run of digits and separators is a phone number when it holds seven or more digits, has a separator or a
/// leading `+` (a bare long number is left to `[number]`), and is not a date or a dotted version.
fn phone_or_keep(run: &str, date: &Regex) -> String {
    let digits = run.chars().filter(char::is_ascii_digit).count();
    let bare = run.chars().all(|c| c.is_ascii_digit());
    let dotted = run.contains('.') && !run.contains(' ') && !run.contains('-');
    if digits >= 7 && !bare && !dotted && !date.is_match(run) { "[phone]".to_owned() } else { run.to_owned() }
}

/// `a.b` is a host name unless it is a file name, a version or an abbreviation such as `e.g`.
fn host_or_keep(m: &str) -> String {
    let last = m.rsplit('.').next().unwrap_or("");
    let is_host = last.len() >= 2
        && last.chars().all(|c| c.is_ascii_alphabetic())
        && !FILE_ENDINGS.contains(&last.to_ascii_lowercase().as_str())
        && m.split('.').all(|l| l.len() >= 2 || l.chars().all(|c| c.is_ascii_digit()));
    if is_host { "[host]".to_owned() } else { m.to_owned() }
}

/// A word that looks like a credential or a generated id is removed: eight or more characters mixing digits
/// with lower- and upper-case letters, or twelve or more holding at least three digits and three letters. Codes
/// in capitals (`KB5034441`, `0x80070005`), versions and platform names (`aarch64-linux`) stay.
fn secret_or_keep(raw: &str) -> String {
    let word = raw.trim_end_matches(['.', '!', '?', '\'', '"']);
    let count = |f: fn(&char) -> bool| word.chars().filter(&f).count();
    let (digits, letters, len) = (count(char::is_ascii_digit), count(|c| c.is_alphabetic()), word.chars().count());
    let mixed_case = count(|c| c.is_lowercase()) > 0 && count(|c| c.is_uppercase()) > 0;
    let hex_code = word.starts_with("0x") && word[2..].chars().all(|c| c.is_ascii_hexdigit());
    let random = len >= 12 && digits >= 3 && letters >= 3 && !word.contains('.');
    if ((len >= 8 && digits > 0 && mixed_case) || random) && !hex_code {
        format!("[secret]{}", &raw[word.len()..])
    } else {
        raw.to_owned()
    }
}

/// Every whole-word occurrence of a name (any case) replaced by `[name]`.
fn remove_names(text: &str, names: &[&str]) -> String {
    let words: Vec<String> = names
        .iter()
        .flat_map(|n| n.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.chars().count() >= 3 && !ROLE_NAMES.contains(&w.to_lowercase().as_str()))
        .map(regex::escape)
        .collect();
    if words.is_empty() {
        return text.to_owned();
    }
    match Regex::new(&format!(r"(?i)\b(?:{})\b", words.join("|"))) {
        Ok(re) => re.replace_all(text, "[name]").into_owned(),
        Err(_) => text.to_owned(),
    }
}

/// The parts of an e-mail address that name a person: its local part's words (`ann.smith@x` → ann, smith).
pub fn names_in_email(email: &str) -> Vec<String> {
    let local = email.split('@').next().unwrap_or("");
    local.split(['.', '_', '-', '+']).filter(|w| w.chars().count() >= 3).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_security_review_resolution_loses_every_secret() {
        let text = "reset usera VPN password to hunter2-SECRET-ALPHA, internal host vpn-int.corp";
        let out = scrub(text, &names_in_email("usera@example.com").iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out, "reset [name] VPN password to [secret], internal host [host]");
    }

    #[test]
    fn contact_details_ids_and_names_are_replaced() {
        let cases = [
            ("Write to ann.smith@example.com or call +1 (555) 123-4567.", "Write to [email] or call [phone]."),
            ("See https://intranet.example.com/kb/42 for details", "See [link] for details"),
            ("Server 10.0.3.17:8443 answered", "Server [address] answered"),
            ("Order 88812345 was refunded, see #77", "Order [number] was refunded, see [ticket]"),
            ("Session 3f2a9c1e-8b7d-4e6f-a1b2-c3d4e5f60718 expired", "Session [id] expired"),
            ("Hi John, I restarted it.\nRegards, Maria Lopez", "Hi [name], I restarted it.\nRegards, [name]"),
            ("Mr. Keller confirmed the fix", "[name] confirmed the fix"),
            ("The new PIN is 4821 and the token: aB3xY9", "The new PIN is [secret] and the token: [secret]"),
            ("Your one-time code abCD12ef34", "Your one-time code [secret]"),
        ];
        for (text, want) in cases {
            assert_eq!(scrub(text, &[]), want, "{text}");
        }
    }

    #[test]
    fn instructions_survive() {
        for text in [
            "Clear the browser cache and sign in again.",
            "Upgrade to v2.3.1 and restart the service on 2026-11-01.",
            "Install KB5034441; error 0x80070005 then goes away.",
            "Delete config.yaml and app.log, then run setup.exe again, e.g. from the desktop.",
            "Raised the idle timeout to 8 h in the VPN profile.",
        ] {
            assert_eq!(scrub(text, &[]), text);
        }
    }

    #[test]
    fn names_of_the_requester_are_removed_in_any_case() {
        let names = names_in_email("ann.smith@example.com");
        assert_eq!(names, ["ann", "smith"]);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(
            scrub("Told Ann that SMITH's laptop is fixed; annotate it", &refs),
            "Told [name] that [name]'s laptop is fixed; annotate it"
        );
    }
}
