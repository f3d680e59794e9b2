//! Markdown to safe HTML, for knowledge-base articles: CommonMark with tables and strikethrough
//! (pulldown-cmark), then sanitised (ammonia): no scripts, event handlers, styles, frames or forms, and links
//! only to `http`, `https` and `mailto` (a `javascript:` link loses its target), each marked `nofollow
//! noopener`. Raw HTML in the Markdown goes through the same sanitiser, so what a writer pastes cannot run.

use pulldown_cmark::{Options, Parser, html};
use std::collections::HashSet;
use std::sync::OnceLock;

/// The sanitised HTML of `markdown`.
pub fn render(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let mut raw = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut raw, Parser::new_ext(markdown, options));
    cleaner().clean(&raw).to_string()
}

/// Plain text of `markdown` (for search-result excerpts and meta descriptions): the rendered text without
/// tags, whitespace collapsed, at most `max` characters (cut at a word, with an ellipsis).
pub fn excerpt(markdown: &str, max: usize) -> String {
    let html = render(markdown);
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = unescape(&text);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = String::new();
    for w in words {
        if out.chars().count() + w.chars().count() + 1 > max {
            out.push('…');
            return out;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// The entities ammonia writes for text (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`) back to characters: the
/// excerpt is text, escaped again wherever it is shown.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

fn cleaner() -> &'static ammonia::Builder<'static> {
    static CLEANER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    CLEANER.get_or_init(|| {
        let mut b = ammonia::Builder::default();
        b.url_schemes(HashSet::from(["http", "https", "mailto"]))
            .link_rel(Some("nofollow noopener noreferrer"))
            .rm_tags(["img"])
            .add_generic_attributes(["id"]);
        b
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_javascript_links_and_raw_html_render_harmless() {
        let md = "# Reset\n\n<script>alert(1)</script>\n\n[click](javascript:alert(2)) \
                  <a href=\"javascript:alert(3)\" onclick=\"alert(4)\">x</a>\n\n<img src=x onerror=alert(5)>\n\n\
                  <iframe src=\"https://evil.example\"></iframe><div style=\"position:fixed\">y</div>\n\n\
                  [ok](https://example.com/help) **bold**";
        let html = render(md);
        for bad in ["<script", "javascript:", "onclick", "onerror", "<iframe", "style=", "<img", "alert(1)"] {
            assert!(!html.to_lowercase().contains(bad), "{bad} in {html}");
        }
        assert!(html.contains("<h1>Reset</h1>"), "{html}");
        assert!(html.contains("<a href=\"https://example.com/help\" rel=\"nofollow noopener noreferrer\">ok</a>"));
        assert!(html.contains("<strong>bold</strong>"));
    }

    #[test]
    fn excerpts_are_plain_text_cut_at_a_word() {
        assert_eq!(excerpt("# Title\n\nSome *text* & <b>more</b> words here", 22), "Title Some text & more…");
        assert_eq!(excerpt("short", 50), "short");
    }
}
