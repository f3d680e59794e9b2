//! Knowledge-base articles: their states, audiences and parsed fields, and who may read, write and publish them.

use crate::{ParseError, Role, bounded_line, bounded_text, string_enum};

string_enum!(
    /// Whether an article is being written or visible to its audience.
    ArticleState, "state" { Draft => "draft", Published => "published" }
);

string_enum!(
    /// Who an article is for: staff only, or anyone (the public help centre and self-service).
    ArticleAudience, "audience" { Internal => "internal", Public => "public" }
);

string_enum!(
    /// Where a proposed article stands: waiting for a person, turned into a draft, or set aside.
    ProposalState, "state" { Open => "open", Accepted => "accepted", Dismissed => "dismissed" }
);

/// An article's title: 3 to 200 characters, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleTitle(String);

impl ArticleTitle {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        bounded_line("title", raw, 3, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An article's Markdown body: 1 to 100,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleBody(String);

impl ArticleBody {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        bounded_text("body", raw, 1, 100_000).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An article's tags: at most 20, each 1 to 40 letters, digits, `-` or `_`, folded to lower case, no repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<String>);

impl Tags {
    pub fn parse(raw: &[String]) -> Result<Self, ParseError> {
        let mut tags: Vec<String> = Vec::new();
        for tag in raw {
            let tag = tag.trim().to_lowercase();
            let valid = (1..=40).contains(&tag.chars().count())
                && tag.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(ParseError::new("tags", "each tag must be 1 to 40 letters, digits, - or _"));
            }
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        if tags.len() > 20 {
            return Err(ParseError::new("tags", "at most 20 tags"));
        }
        Ok(Self(tags))
    }

    pub fn into_inner(self) -> Vec<String> {
        self.0
    }
}

/// The address-friendly form of a title: lower-case letters and digits joined by `-`, at most 80 characters
/// (`article` when nothing is left). Accents are kept (the address is UTF-8, percent-encoded by browsers).
pub fn slug_of(title: &str) -> String {
    let mut slug = String::new();
    for word in title.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_lowercase();
        if slug.chars().count() + word.chars().count() + 1 > 80 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word);
    }
    if slug.is_empty() { "article".to_owned() } else { slug }
}

/// Who may read an article in `state` for `audience`: anyone a published public one; staff every one
/// (drafts and internal articles included). `role` is `None` for a visitor who has not signed in. Anyone
/// else is told it does not exist.
pub fn may_read_article(role: Option<Role>, state: ArticleState, audience: ArticleAudience) -> bool {
    let staff = matches!(role, Some(Role::Moderator | Role::Admin));
    staff || (state == ArticleState::Published && audience == ArticleAudience::Public)
}

/// Who may write and edit articles (as drafts, or the text of published ones): staff.
pub fn may_write_articles(role: Role) -> bool {
    matches!(role, Role::Moderator | Role::Admin)
}

/// Who may publish, unpublish, change the audience of, and delete articles: admins (a person's click, never
/// the AI's).
pub fn may_publish_articles(role: Role) -> bool {
    role == Role::Admin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_published_public_articles_reach_customers_and_visitors() {
        use ArticleAudience::*;
        use ArticleState::*;
        for role in [None, Some(Role::User)] {
            assert!(may_read_article(role, Published, Public));
            assert!(!may_read_article(role, Draft, Public));
            assert!(!may_read_article(role, Published, Internal));
        }
        assert!(may_read_article(Some(Role::Moderator), Draft, Internal));
        assert!(!may_publish_articles(Role::Moderator));
        assert!(may_write_articles(Role::Moderator) && !may_write_articles(Role::User));
    }

    #[test]
    fn slugs_and_tags_are_tidy() {
        assert_eq!(slug_of("  Reset your password: step by step! "), "reset-your-password-step-by-step");
        assert_eq!(slug_of("Zurücksetzen des Passworts"), "zurücksetzen-des-passworts");
        assert_eq!(slug_of("!!!"), "article");
        assert!(slug_of(&"word ".repeat(50)).chars().count() <= 80);
        let tags = Tags::parse(&["VPN".into(), "vpn".into(), " remote-work ".into()]).unwrap();
        assert_eq!(tags.into_inner(), ["vpn", "remote-work"]);
        assert!(Tags::parse(&["two words".into()]).is_err());
        assert!(Tags::parse(&(0..21).map(|i| i.to_string()).collect::<Vec<_>>()).is_err());
    }
}
