//! Published test vectors (../reference/signatures.md) and the negative cases that matter,
//! all with an injected clock.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::SecretString;

use super::*;

const TOL: u64 = 300;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

fn text_key(secret: &str) -> SigningKey {
    SigningKey::from_text("test", &SecretString::from(secret), None)
}

fn check(
    scheme: &Scheme,
    key: &SigningKey,
    pairs: &[(&str, &str)],
    body: &[u8],
    now: i64,
) -> Result<Verified, VerifyError> {
    let h = headers(pairs);
    scheme.verify(&SignedRequest { headers: &h, body }, &[key], now, TOL)
}

mod standard_webhooks {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: &str = "1649367553";
    const NOW: i64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn key() -> SigningKey {
        SigningKey::from_whsec("test", &SecretString::from(SECRET), None).unwrap()
    }

    fn verify(sig: &str, body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        check(
            &Scheme::StandardWebhooks,
            &key(),
            &[
                ("webhook-id", ID),
                ("webhook-timestamp", TS),
                ("webhook-signature", sig),
            ],
            body,
            now,
        )
    }

    #[test]
    fn published_vector_verifies_and_yields_the_message_id() {
        assert_eq!(
            verify(SIG, BODY, NOW).unwrap().delivery_id.as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn signing_reproduces_the_vector() {
        let signed = Scheme::StandardWebhooks.sign(&key(), BODY, NOW, ID);
        assert!(
            signed.contains(&("webhook-signature".to_owned(), SIG.to_owned())),
            "{signed:?}"
        );
    }

    #[test]
    fn svix_header_names_are_accepted() {
        let got = check(
            &Scheme::StandardWebhooks,
            &key(),
            &[
                ("svix-id", ID),
                ("svix-timestamp", TS),
                ("svix-signature", SIG),
            ],
            BODY,
            NOW,
        );
        assert!(got.is_ok(), "{got:?}");
    }

    #[test]
    fn tampered_partial_and_truncated_signatures_fail() {
        assert_eq!(
            verify(
                SIG,
                br#"{"email":"test@example.com","username":"test_userX"}"#,
                NOW
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(verify("v1,", BODY, NOW), Err(VerifyError::Mismatch));
        assert_eq!(
            verify(&SIG[..SIG.len() - 4], BODY, NOW),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=", BODY, NOW),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn one_valid_signature_among_several_is_enough_and_none_valid_is_not() {
        let several = format!("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {SIG} v1a,abcd");
        assert!(verify(&several, BODY, NOW).is_ok());
        let none = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1,dGVzdA==";
        assert_eq!(verify(none, BODY, NOW), Err(VerifyError::Mismatch));
    }

    #[test]
    fn the_window_holds_both_ways() {
        assert!(verify(SIG, BODY, NOW + 300).is_ok());
        assert_eq!(verify(SIG, BODY, NOW + 301), Err(VerifyError::TooOld(TOL)));
        assert!(verify(SIG, BODY, NOW - 300).is_ok());
        assert_eq!(verify(SIG, BODY, NOW - 301), Err(VerifyError::TooNew(TOL)));
    }

    #[test]
    fn missing_headers_are_named() {
        let got = check(
            &Scheme::StandardWebhooks,
            &key(),
            &[("webhook-id", ID), ("webhook-timestamp", TS)],
            BODY,
            NOW,
        );
        assert_eq!(got, Err(VerifyError::Missing("webhook-signature".into())));
        let got = check(
            &Scheme::StandardWebhooks,
            &key(),
            &[("webhook-signature", SIG), ("webhook-timestamp", TS)],
            BODY,
            NOW,
        );
        assert_eq!(got, Err(VerifyError::Missing("webhook-id".into())));
    }
}

mod github {
    use super::*;

    const SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn verify(sig: &str, body: &[u8]) -> Result<Verified, VerifyError> {
        check(
            &Scheme::Github,
            &text_key("It's a Secret to Everybody"),
            &[
                ("x-hub-signature-256", sig),
                ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ],
            body,
            0,
        )
    }

    #[test]
    fn published_vector_verifies_with_the_delivery_id() {
        let v = verify(SIG, b"Hello, World!").unwrap();
        assert_eq!(
            v.delivery_id.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
    }

    #[test]
    fn signing_reproduces_the_vector() {
        let signed = Scheme::Github.sign(
            &text_key("It's a Secret to Everybody"),
            b"Hello, World!",
            0,
            "d",
        );
        assert_eq!(
            signed[0],
            ("X-Hub-Signature-256".to_owned(), SIG.to_owned())
        );
    }

    #[test]
    fn tampering_wrong_prefix_and_legacy_sha1_fail() {
        assert_eq!(verify(SIG, b"Hello, World?"), Err(VerifyError::Mismatch));
        assert_eq!(
            verify(&SIG[..41], b"Hello, World!"),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify(&SIG.replace("sha256=", "sha1="), b"Hello, World!"),
            Err(VerifyError::Malformed(_))
        ));
        let got = check(
            &Scheme::Github,
            &text_key("It's a Secret to Everybody"),
            &[],
            b"Hello, World!",
            0,
        );
        assert_eq!(got, Err(VerifyError::Missing("x-hub-signature-256".into())));
    }
}

mod stripe {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const T: i64 = 1492774577;
    const V1: &str = "v1=88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a";

    fn verify(header: &str, body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        check(
            &Scheme::Stripe,
            &text_key("whsec_test_secret"),
            &[("stripe-signature", header)],
            body,
            now,
        )
    }

    #[test]
    fn computed_vector_verifies_and_yields_the_event_id() {
        let v = verify(&format!("t={T},{V1}"), BODY, T).unwrap();
        assert_eq!(v.delivery_id.as_deref(), Some("evt_test_webhook"));
    }

    #[test]
    fn keys_are_parsed_by_name_not_position() {
        assert!(verify(&format!("{V1},t={T},v0=6ffbb59b"), BODY, T).is_ok());
    }

    #[test]
    fn any_v1_may_match_but_v0_alone_never_does() {
        assert!(verify(&format!("t={T},v1=00ff,{V1}"), BODY, T).is_ok());
        assert_eq!(
            verify(&format!("t={T},v1=00ff,v1=abcd"), BODY, T),
            Err(VerifyError::Mismatch)
        );
        let v0_only =
            format!("t={T},v0=88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a");
        assert_eq!(verify(&v0_only, BODY, T), Err(VerifyError::Mismatch));
    }

    #[test]
    fn the_vector_is_expired_an_hour_later_and_early_when_in_the_future() {
        assert_eq!(
            verify(&format!("t={T},{V1}"), BODY, T + 3600),
            Err(VerifyError::TooOld(TOL))
        );
        assert_eq!(
            verify(&format!("t={T},{V1}"), BODY, T - 3600),
            Err(VerifyError::TooNew(TOL))
        );
    }

    #[test]
    fn missing_timestamp_or_tampered_body_fail() {
        assert!(matches!(
            verify(V1, BODY, T),
            Err(VerifyError::Malformed(_))
        ));
        assert_eq!(
            verify(
                &format!("t={T},{V1}"),
                br#"{"id":"evt_other","object":"event"}"#,
                T
            ),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(
            verify(&format!("t=Infinity,{V1}"), BODY, T),
            Err(VerifyError::Mismatch)
        ));
    }
}

mod shopify {
    use super::*;

    const BODY: &[u8] = br#"{"id":1,"topic":"orders/create"}"#;
    const SIG: &str = "rlYwtxSz64KhPygOLXbekmzsjq0OqrcotnlUzAe2yuQ=";

    #[test]
    fn computed_vector_verifies_with_the_webhook_id() {
        let v = check(
            &Scheme::Shopify,
            &text_key("hush"),
            &[
                ("x-shopify-hmac-sha256", SIG),
                ("x-shopify-webhook-id", "b54557e4"),
            ],
            BODY,
            0,
        )
        .unwrap();
        assert_eq!(v.delivery_id.as_deref(), Some("b54557e4"));
        assert!(check(
            &Scheme::Shopify,
            &text_key("hush"),
            &[("shopify-hmac-sha256", SIG)],
            BODY,
            0
        )
        .is_ok());
    }

    #[test]
    fn a_wrong_secret_or_body_fails() {
        assert_eq!(
            check(
                &Scheme::Shopify,
                &text_key("hush2"),
                &[("x-shopify-hmac-sha256", SIG)],
                BODY,
                0
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(
                &Scheme::Shopify,
                &text_key("hush"),
                &[("x-shopify-hmac-sha256", SIG)],
                b"{}",
                0
            ),
            Err(VerifyError::Mismatch)
        );
    }
}

mod slack {
    use super::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const NOW: i64 = 1531420618;
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn verify(sig: &str, body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        check(
            &Scheme::Slack,
            &text_key(SECRET),
            &[
                ("x-slack-signature", sig),
                ("x-slack-request-timestamp", TS),
            ],
            body,
            now,
        )
    }

    #[test]
    fn published_vector_verifies() {
        assert!(verify(SIG, BODY, NOW).is_ok());
        let signed = Scheme::Slack.sign(&text_key(SECRET), BODY, NOW, "");
        assert!(signed.contains(&("X-Slack-Signature".to_owned(), SIG.to_owned())));
    }

    #[test]
    fn window_prefix_and_tampering() {
        assert_eq!(verify(SIG, BODY, NOW + 301), Err(VerifyError::TooOld(TOL)));
        assert_eq!(verify(SIG, BODY, NOW - 301), Err(VerifyError::TooNew(TOL)));
        assert!(matches!(
            verify(&SIG.replace("v0=", "v1="), BODY, NOW),
            Err(VerifyError::Malformed(_))
        ));
        assert_eq!(verify(SIG, &BODY[1..], NOW), Err(VerifyError::Mismatch));
    }
}

mod generic {
    use super::*;

    const BODY: &[u8] = br#"{"event":"charge.success","amount":1000,"currency":"NGN"}"#;

    fn convoy(encoding: Encoding) -> Scheme {
        Scheme::Generic(
            GenericScheme::new(
                "X-Convoy-Signature",
                Algorithm::Sha256,
                encoding,
                None,
                None,
                None,
                None,
            )
            .unwrap(),
        )
    }

    #[test]
    fn convoy_simple_vectors_verify_in_hex_and_base64() {
        let key = text_key("convoy-webhook-secret");
        let hex_sig = "244449b7f48cbc2709060c9dcdc2b3aa47a78f540430579015c579fb12defbb4";
        assert!(check(
            &convoy(Encoding::Hex),
            &key,
            &[("x-convoy-signature", hex_sig)],
            BODY,
            0
        )
        .is_ok());
        let b64 = "JERJt/SMvCcJBgydzcKzqkenj1QEMFeQFcV5+xLe+7Q=";
        assert!(check(
            &convoy(Encoding::Base64),
            &key,
            &[("x-convoy-signature", b64)],
            BODY,
            0
        )
        .is_ok());
        assert_eq!(
            check(
                &convoy(Encoding::Hex),
                &key,
                &[("x-convoy-signature", "1234567890")],
                BODY,
                0
            ),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn github_is_a_generic_scheme_with_a_prefix() {
        let scheme = Scheme::Generic(
            GenericScheme::new(
                "X-Hub-Signature-256",
                Algorithm::Sha256,
                Encoding::Hex,
                Some("sha256="),
                None,
                None,
                None,
            )
            .unwrap(),
        );
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(check(
            &scheme,
            &text_key("It's a Secret to Everybody"),
            &[("x-hub-signature-256", sig)],
            b"Hello, World!",
            0
        )
        .is_ok());
    }

    #[test]
    fn a_timestamp_template_signs_and_verifies_within_the_window() {
        let scheme = Scheme::Generic(
            GenericScheme::new(
                "X-Sig",
                Algorithm::Sha512,
                Encoding::Base64,
                None,
                Some("{timestamp}.{body}"),
                Some("X-Ts"),
                None,
            )
            .unwrap(),
        );
        let key = text_key("s3cret");
        let signed = scheme.sign(&key, BODY, 1_700_000_000, "");
        let pairs: Vec<(&str, &str)> = signed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert!(check(&scheme, &key, &pairs, BODY, 1_700_000_000).is_ok());
        assert_eq!(
            check(&scheme, &key, &pairs, BODY, 1_700_000_301),
            Err(VerifyError::TooOld(TOL))
        );
        assert_eq!(
            check(&scheme, &key, &pairs, b"{}", 1_700_000_000),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        let new = |t| {
            GenericScheme::new(
                "X",
                Algorithm::Sha256,
                Encoding::Hex,
                None,
                Some(t),
                None,
                None,
            )
        };
        assert!(new("{timestamp}.{body}")
            .unwrap_err()
            .contains("timestamp_header"));
        assert!(new("{nope}.{body}")
            .unwrap_err()
            .contains("unknown placeholder"));
        assert!(new("no body").unwrap_err().contains("{body}"));
    }
}

#[test]
fn keys_never_print_their_bytes() {
    let key = text_key("hunter2-secret");
    assert!(!format!("{key:?}").contains("hunter2"));
}

#[test]
fn any_of_several_keys_verifies_and_expired_keys_are_inactive() {
    let old = text_key("old-secret");
    let new = SigningKey::from_text("new", &SecretString::from("new-secret"), Some(100));
    let signed = Scheme::Github.sign(&old, b"x", 0, "d");
    let h = headers(&[("x-hub-signature-256", signed[0].1.as_str())]);
    let req = SignedRequest {
        headers: &h,
        body: b"x",
    };
    assert!(Scheme::Github.verify(&req, &[&new, &old], 0, TOL).is_ok());
    assert_eq!(
        Scheme::Github.verify(&req, &[&new], 0, TOL),
        Err(VerifyError::Mismatch)
    );
    assert!(new.is_active(99) && !new.is_active(100));
}
