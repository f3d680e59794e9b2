//! People: e-mail addresses, passwords, roles and skills.

use crate::{ParseError, string_enum};
use std::fmt;

string_enum!(
    /// What a person may do: users file tickets, moderators work them, admins run the desk.
    Role, "role" { User => "user", Moderator => "moderator", Admin => "admin" }
);

impl Role {
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Moderator | Role::Admin)
    }
}

/// A syntactically plausible e-mail address, normalised so that one person has one account and no address
/// can pass for another: NFKC (fullwidth and other compatibility forms become their plain letters), lower-cased,
/// the domain in its ASCII (IDNA) form. Refused: invisible or formatting characters, and a part (the local part,
/// each domain label) that mixes scripts (a Cyrillic `е` among Latin letters). Two addresses that look alike
/// share a [`Email::skeleton`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        use unicode_normalization::UnicodeNormalization;
        let err = |m: &'static str| Err(ParseError::new("email", m));
        let trimmed = raw.trim();
        if trimmed.chars().any(|c| crate::is_invisible(c) || c.is_control()) {
            return err("must not contain invisible or formatting characters");
        }
        let e: String = trimmed.nfkc().collect::<String>().to_lowercase();
        if e.is_empty() {
            return err("must not be empty");
        }
        if e.len() > 254 {
            return err("must be at most 254 characters");
        }
        let Some((local, domain)) = e.split_once('@') else {
            return err("must look like name@example.com");
        };
        let bad = |c: char| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '<' | '>' | '(' | ')' | ',' | ';' | ':' | '\\' | '"' | '[' | ']' | '@')
        };
        if local.is_empty() || local.len() > 64 || local.chars().any(bad) {
            return err("must look like name@example.com");
        }
        let labels_ok = domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if !domain.contains('.') || !labels_ok {
            return err("must look like name@example.com");
        }
        if !single_script(local) || !domain.split('.').all(single_script) {
            return err("must not mix alphabets within a name (such as Latin and Cyrillic letters)");
        }
        let Ok(domain) = idna::domain_to_ascii(domain) else {
            return err("must have a valid domain name");
        };
        Ok(Self(format!("{local}@{domain}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the address looks like (Unicode TS #39 confusable skeleton of its readable form): addresses that
    /// a person could mistake for each other (`rn` for `m`, `0` for `o`, a Cyrillic `а` for a Latin one) share it.
    pub fn skeleton(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or((&self.0, ""));
        let readable = idna::domain_to_unicode(domain).0;
        unicode_security::skeleton(&format!("{local}@{readable}")).collect::<String>().to_lowercase()
    }
}

/// Whether the letters of `part` come from one script (digits, `-`, `.` and the like belong to all).
fn single_script(part: &str) -> bool {
    use unicode_security::MixedScript;
    part.is_single_script()
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

/// A new password as typed; its `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let n = raw.chars().count();
        if n < Self::MIN {
            return Err(ParseError::new("password", format!("must be at least {} characters", Self::MIN)));
        }
        if n > Self::MAX {
            return Err(ParseError::new("password", format!("must be at most {} characters", Self::MAX)));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A new password for the account `email`: [`Password::parse`], and neither the address (or its name
    /// part) nor one of the most common passwords.
    pub fn parse_for(raw: &str, email: &Email) -> Result<Self, ParseError> {
        let password = Self::parse(raw)?;
        let lower = raw.trim().to_lowercase();
        let local = email.as_str().split('@').next().unwrap_or_default();
        if lower == email.as_str() || lower == local {
            return Err(ParseError::new("password", "must not be your e-mail address"));
        }
        if COMMON_PASSWORDS.contains(&lower.as_str()) {
            return Err(ParseError::new("password", "is one of the most common passwords: choose another"));
        }
        Ok(password)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The most used passwords of eight characters or more (lower-cased), from public breach-frequency lists.
const COMMON_PASSWORDS: &[&str] = &[
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "password",
    "password1",
    "password12",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "qwertyuiop",
    "qwerty123",
    "qwerty12",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "zaq12wsx",
    "iloveyou",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "welcome123",
    "abc12345",
    "abcd1234",
    "11111111",
    "00000000",
    "88888888",
    "87654321",
    "admin123",
    "administrator",
    "letmein1",
    "trustno1",
    "superman",
    "starwars",
    "whatever",
    "computer",
    "internet",
    "changeme",
    "dragon12",
    "monkey12",
    "michael1",
    "shadow12",
    "master12",
    "iloveyou1",
    "aa123456",
    "asdfghjkl",
    "asdf1234",
    "q1w2e3r4",
    "1234qwer",
    "qwer1234",
    "11223344",
    "123123123",
    "987654321",
    "default1",
    "secret12",
    "letmein123",
    "welcome!",
    "passwort",
    "hallo123",
    "azertyuiop",
    "contraseña",
    "senha123",
    "motdepasse",
    "test1234",
    "testtest",
    "football1",
    "baseball1",
    "jennifer",
    "michelle",
    "1234abcd",
    "12341234",
    "liverpool",
];

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// One skill tag, e.g. `rust`, `billing`, `c++`: lower-case, trimmed, inner spaces collapsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Skill(String);

/// Lower-cases, trims and collapses spaces, then checks a tag-like name (skills, categories).
pub(crate) fn label(field: &'static str, what: &str, raw: &str) -> Result<String, ParseError> {
    let s = raw.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    if s.is_empty() {
        return Err(ParseError::new(field, format!("a {what} must not be empty")));
    }
    if s.chars().count() > 50 {
        return Err(ParseError::new(field, format!("a {what} must be at most 50 characters")));
    }
    if !s.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '+' | '#' | '.' | '/' | '&')) {
        return Err(ParseError::new(field, format!("a {what} may hold letters, digits, spaces and - _ + # . / &")));
    }
    Ok(s)
}

impl Skill {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        label("skills", "skill", raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A set of skills in first-seen order, without duplicates, at most [`Skills::MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Skills(Vec<Skill>);

impl Skills {
    pub const MAX: usize = 50;

    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ParseError> {
        let mut out: Vec<Skill> = Vec::new();
        for r in raw {
            let s = Skill::parse(r.as_ref())?;
            if !out.contains(&s) {
                out.push(s);
            }
        }
        if out.len() > Self::MAX {
            return Err(ParseError::new("skills", format!("at most {} skills", Self::MAX)));
        }
        Ok(Self(out))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Skill> {
        self.0.iter()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|s| s.0.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@ex..com",
            "ada@-x.com",
            "<a>@x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn look_alike_addresses_are_refused_or_share_a_skeleton() {
        // Refused outright: invisible characters, mixed scripts within a part.
        for bad in [
            "admin\u{200B}@example.com",
            "ad\u{2060}min@example.com",
            "adm\u{0456}n@example.com",
            "admin@exampl\u{0435}.com",
            "\u{202E}nimda@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
        // Normalised to the plain address.
        assert_eq!(Email::parse("\u{FF41}dmin@example.com").unwrap().as_str(), "admin@example.com", "fullwidth a");
        assert_eq!(Email::parse("Admin@EXAMPLE.com").unwrap().as_str(), "admin@example.com");
        assert_eq!(Email::parse("ann@bücher.de").unwrap().as_str(), "ann@xn--bcher-kva.de", "IDN to ASCII");
        // One script throughout is fine; it looks like the Latin address, so they share a skeleton.
        let cyrillic = Email::parse("\u{0430}\u{0441}\u{0435}@example.com").unwrap();
        assert_eq!(cyrillic.skeleton(), Email::parse("ace@example.com").unwrap().skeleton());
        let skeleton = |e: &str| Email::parse(e).unwrap().skeleton();
        assert_eq!(skeleton("rnike@example.com"), skeleton("mike@example.com"), "rn looks like m");
        assert_eq!(skeleton("b0b@example.com"), skeleton("bob@example.com"), "0 looks like o");
        assert_ne!(skeleton("ann@example.com"), skeleton("anna@example.com"));
    }

    #[test]
    fn new_passwords_are_neither_the_address_nor_common() {
        let email = Email::parse("grace@example.com").unwrap();
        for bad in ["grace@example.com", "GRACE@example.com", "Password1", "qwerty123", "12345678"] {
            assert!(Password::parse_for(bad, &email).is_err(), "{bad}");
        }
        assert!(Password::parse_for("grace-likes-cobol", &email).is_ok());
    }

    #[test]
    fn password_debug_is_redacted() {
        let p = Password::parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
        assert!(Password::parse("short").is_err());
    }

    #[test]
    fn skills_are_normalised_and_deduplicated() {
        let s = Skills::parse(&["Rust", " rust ", "Postgres  SQL", "c++"]).unwrap();
        assert_eq!(s.to_strings(), vec!["rust", "postgres sql", "c++"]);
        assert!(Skills::parse(&["<script>"]).is_err());
        assert!(Skills::parse(&[""]).is_err());
    }

    proptest! {
        #[test]
        fn a_parsed_email_parses_to_itself(local in "[a-zA-Z0-9._%+-]{1,30}", domain in "[a-z0-9]{1,20}\\.[a-z]{2,6}") {
            let e = Email::parse(&format!("{local}@{domain}")).unwrap();
            prop_assert_eq!(Email::parse(e.as_str()).unwrap(), e.clone());
            prop_assert_eq!(e.as_str(), e.as_str().to_lowercase());
        }

        #[test]
        fn email_parse_never_panics_and_accepts_only_one_at(raw in "\\PC{0,80}") {
            if let Ok(e) = Email::parse(&raw) {
                prop_assert_eq!(e.as_str().matches('@').count(), 1);
                prop_assert!(!e.as_str().chars().any(char::is_whitespace));
            }
        }

        #[test]
        fn parsed_skills_are_unique_and_lowercase(raw in proptest::collection::vec("[A-Za-z ]{0,12}", 0..20)) {
            if let Ok(s) = Skills::parse(&raw) {
                let v = s.to_strings();
                let mut d = v.clone();
                d.sort();
                d.dedup();
                prop_assert_eq!(d.len(), v.len());
                prop_assert!(v.iter().all(|x| x == &x.to_lowercase() && !x.is_empty()));
            }
        }
    }
}
