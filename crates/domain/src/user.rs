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

/// A syntactically plausible e-mail address, trimmed and lower-cased so that one person has one account.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let e = raw.trim().to_lowercase();
        let err = |m: &'static str| Err(ParseError::new("email", m));
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
        Ok(Self(e))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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

    pub fn expose(&self) -> &str {
        &self.0
    }
}

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
