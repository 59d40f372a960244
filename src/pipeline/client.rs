//! Client stage: the sender's address. The socket peer, unless the peer is a trusted proxy:
//! then the right-most address in X-Forwarded-For (or Forwarded) that is not itself a trusted
//! proxy. Headers from untrusted peers are ignored, so they cannot be spoofed.

use std::net::IpAddr;
use std::ops::ControlFlow;

use actix_web::http::header::{HeaderMap, HeaderName, FORWARDED};
use ipnet::IpNet;

use crate::error::GatewayError;
use crate::route_table::Route;

/// Not one of the standard names: looked up by a `&str`, it would be built (and allocated) anew
/// for every request.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // Right to left: the first hop not added by a trusted proxy is the client. An unparsable
    // entry ends the walk: nothing left of it can be trusted.
    let mut client = peer;
    let mut visit = |hop: &str| match parse_hop(hop) {
        Some(ip) => {
            client = ip;
            if is_trusted(&ip) {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        }
        None => ControlFlow::Break(()),
    };
    if forwarded_for(headers).next().is_some() {
        let _ = forwarded_for(headers).rev().try_for_each(&mut visit);
    } else {
        let _ = headers
            .get_all(X_FORWARDED_FOR)
            .rev()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.rsplit(','))
            .try_for_each(|hop| visit(hop.trim()));
    }
    Some(client)
}

/// The `for=` addresses of `Forwarded` (RFC 7239), left to right, unparsed. Walked in place:
/// no list is built per request.
fn forwarded_for(headers: &HeaderMap) -> impl DoubleEndedIterator<Item = &str> {
    headers
        .get_all(FORWARDED)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| v.trim().trim_matches('"'))
            })
        })
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    s.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

/// 403 `ip_not_allowed` when the route has an allow-list and the client is not on it.
pub fn check_allowed(route: &Route, client: Option<IpAddr>) -> Result<(), GatewayError> {
    if route.allow_ips().is_empty() {
        return Ok(());
    }
    match client {
        Some(ip) if route.allow_ips().iter().any(|net| net.contains(&ip)) => Ok(()),
        _ => Err(GatewayError::IpNotAllowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_cannot_spoof_its_address() {
        let h = headers("x-forwarded-for", "10.9.9.9");
        assert_eq!(
            client_ip(Some(ip("203.0.113.5")), &h, &nets(&["127.0.0.1/32"])),
            Some(ip("203.0.113.5"))
        );
    }

    #[test]
    fn a_trusted_proxy_gives_the_right_most_untrusted_hop() {
        let h = headers("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2");
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &trusted),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn forwarded_is_read_with_ports_and_brackets() {
        let h = headers(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
        );
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &nets(&["127.0.0.1/32"])),
            Some(ip("2001:db8:cafe::17"))
        );
    }

    #[test]
    fn garbage_stops_the_walk() {
        let h = headers("x-forwarded-for", "1.1.1.1, garbage, 198.51.100.7");
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &nets(&["127.0.0.1/32"])),
            Some(ip("198.51.100.7"))
        );
        let h = headers("x-forwarded-for", "1.1.1.1, garbage");
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &nets(&["127.0.0.1/32"])),
            Some(ip("127.0.0.1"))
        );
    }

    #[test]
    fn several_header_lines_are_one_list_in_order() {
        let mut h = headers("x-forwarded-for", "6.6.6.6, 198.51.100.7");
        h.append(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_static("10.0.0.3, 10.0.0.2"),
        );
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &trusted),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_gives_its_left_most_hop() {
        let h = headers("x-forwarded-for", "10.0.0.9, 10.0.0.2");
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &trusted),
            Some(ip("10.0.0.9"))
        );
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_skips_elements_without_for() {
        let mut h = headers("forwarded", "for=192.0.2.60, proto=https;by=10.0.0.1");
        h.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_static("198.51.100.7"),
        );
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &nets(&["127.0.0.1/32"])),
            Some(ip("192.0.2.60"))
        );
    }
}
