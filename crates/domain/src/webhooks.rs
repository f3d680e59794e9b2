//! Webhooks: the events a subscription may ask for, the address it is delivered to, and which addresses are
//! refused unless an admin allows them (loopback, private, link-local and other non-public ranges: a webhook
//! must not become a way into the desk's own network).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{ParseError, string_enum};

string_enum!(
    /// What a webhook is told about.
    WebhookEvent, "events" {
        TicketCreated => "ticket.created",
        TicketTriaged => "ticket.triaged",
        TicketAssigned => "ticket.assigned",
        TicketUpdated => "ticket.updated",
        TicketResolved => "ticket.resolved",
        CommentAdded => "comment.added",
        RuleFired => "rule.fired",
    }
);

/// The events of a subscription: 1 to all of them, each once (`rule.fired` is sent by a rule's
/// `call_webhook`, subscribed or not).
pub fn parse_events<S: AsRef<str>>(raw: &[S]) -> Result<Vec<WebhookEvent>, ParseError> {
    let mut out = Vec::new();
    for r in raw {
        let e: WebhookEvent = r.as_ref().trim().parse()?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    if out.is_empty() {
        return Err(ParseError::new("events", "name at least one event"));
    }
    Ok(out)
}

/// A webhook's address: `http` or `https`, a host, no user or password in it, at most 2,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: String,
    host: String,
    port: u16,
}

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let bad = |why: &'static str| ParseError::new("url", why);
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 2000 || raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("must be an http or https address of at most 2,000 characters"));
        }
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| bad("must start with http:// or https://"))?;
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad("must start with http:// or https://")),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(bad("must not hold a user name or password"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("must name a host (and a valid port)"))?;
        if host.is_empty() {
            return Err(bad("must name a host"));
        }
        Ok(Self { url: raw.to_owned(), host: host.to_ascii_lowercase(), port: port.unwrap_or(default_port) })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The host name or address (IPv6 without its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, p)) => Some((host.to_owned(), Some(p.parse().ok()?))),
        None => Some((authority.to_owned(), None)),
    }
}

/// Whether `ip` is outside the public internet: loopback, private, link-local, shared (CGNAT), unspecified,
/// broadcast, multicast, documentation and benchmarking ranges, IPv6 unique-local and link-local, and IPv4
/// addresses written as IPv6.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 192 && b == 0 && c == 0)
        || a >= 240
}

fn private_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return private_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        let u = WebhookUrl::parse("https://hooks.example.com/in?x=1").unwrap();
        assert_eq!((u.host(), u.port()), ("hooks.example.com", 443));
        assert_eq!(WebhookUrl::parse("http://[::1]:8080/x").unwrap().host(), "::1");
        assert_eq!(WebhookUrl::parse("http://127.0.0.1:9000").unwrap().port(), 9000);
        for bad in ["ftp://x", "http://user:pw@x.com/", "http://", "x.com", "http://x.com:99999/", "http://a b"] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_ranges_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "172.32.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn events_are_named_once() {
        assert_eq!(parse_events(&["ticket.created", "ticket.created"]).unwrap(), [WebhookEvent::TicketCreated]);
        assert_eq!(parse_events(&["ticket.exploded"]).unwrap_err().field, "events");
        assert!(parse_events::<&str>(&[]).is_err());
    }
}
