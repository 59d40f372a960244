//! The `email` field type's check: validator's rule, with a fast path for the common address.
//!
//! validator's `validate_email` matches two regular expressions per address (a domain pattern
//! with `{0,61}` repetitions among them) and costs 2.3–2.5 µs, more than the rest of a
//! signup's field rules together. An address of plain ASCII (`jo.ann+x@mail.example.com`) is
//! accepted here by a byte scan of the same rule; anything else (an IDN domain, an address
//! literal, any address the scan does not accept) gets validator's verdict, so the answer is
//! always validator's.

use validator::ValidateEmail;

/// Whether `s` is a valid address, exactly as validator's `validate_email` decides.
pub fn is_valid_email(s: &str) -> bool {
    plainly_valid(s) || s.validate_email()
}

/// True only for addresses validator accepts: a local part of 1–64 of the bytes its user
/// pattern allows (`^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+\z`), `@`, and a domain its domain
/// pattern matches: dot-separated labels of 1–63 letters, digits and hyphens, neither first
/// nor last a hyphen, 255 bytes at most.
fn plainly_valid(s: &str) -> bool {
    let Some((user, domain)) = s.rsplit_once('@') else {
        return false;
    };
    (1..=64).contains(&user.len())
        && user.bytes().all(user_byte)
        && domain.len() <= 255
        && domain.split('.').all(plain_label)
}

fn user_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b)
}

fn plain_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 63
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Addresses on both sides of every part of the rule, and some the fast path leaves to
    /// validator (IDN, literal, a second `@`).
    const CASES: &[&str] = &[
        "jo@example.com",
        "jo.ann+tag@mail.example.co.uk",
        "a@b",
        "!#$%&'*+/=?^_`{|}~-@example.com",
        "x@a-b.c",
        "x@a--b.c",
        "x@-ab.c",
        "x@ab-.c",
        "x@ab..c",
        "x@.ab",
        "x@ab.",
        "x@",
        "@example.com",
        "",
        "no-at-sign",
        "a@b@example.com",
        "a b@example.com",
        "jo@exa_mple.com",
        "jo@[127.0.0.1]",
        "jo@[::1]",
        "jo@[not-an-ip]",
        "jo@bücher.de",
        "jö@example.com",
        "jo@example.com\n",
        "1234567890123456789012345678901234567890123456789012345678901234@x.com",
        "12345678901234567890123456789012345678901234567890123456789012345@x.com",
        "x@123456789012345678901234567890123456789012345678901234567890123.com",
        "x@1234567890123456789012345678901234567890123456789012345678901234.com",
    ];

    #[test]
    fn the_verdict_is_validators_on_every_edge_of_the_rule() {
        for case in CASES {
            assert_eq!(
                is_valid_email(case),
                case.validate_email(),
                "{case:?}: this check and validator disagree"
            );
        }
        let long_domain = format!("x@{}.com", ["a"; 127].join("."));
        assert_eq!(long_domain.len(), 2 + 253 + 4);
        assert_eq!(is_valid_email(&long_domain), long_domain.validate_email());
    }

    #[test]
    fn common_addresses_take_the_fast_path() {
        for case in ["jo@example.com", "bench-12@example.com", "a.b+c@d-e.f.gh"] {
            assert!(plainly_valid(case), "{case}");
        }
        for case in ["jo@bücher.de", "jo@[127.0.0.1]", "a@b@c.d", "x@ab-.c"] {
            assert!(!plainly_valid(case), "{case}");
        }
    }

    proptest! {
        /// The fast path accepts nothing validator refuses, over strings drawn from the
        /// characters that matter to the rule.
        #[test]
        fn the_fast_path_accepts_only_what_validator_accepts(
            s in "[a-c0-9.@+_\\-\\[\\]:é ]{0,24}"
        ) {
            prop_assert!(!plainly_valid(&s) || s.validate_email(), "{:?}", s);
            prop_assert_eq!(is_valid_email(&s), s.validate_email());
        }
    }
}
