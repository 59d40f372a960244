//! Text that is usually short, held inline: a 422's field names and messages. A flood of
//! rejected forms builds a dozen of each per request; as `String`s each was an allocation and a
//! free, a fifth of a rejected request's allocations. A fixed message is borrowed, a name or
//! message of up to [`INLINE`] bytes is copied into the value, only a longer one is boxed.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use arrayvec::ArrayString;
use serde::{Serialize, Serializer};

/// The longest text held inline.
pub const INLINE: usize = 38;

#[derive(Clone)]
pub struct ShortText(Repr);

#[derive(Clone)]
enum Repr {
    Fixed(&'static str),
    /// Read back as text without checking it again.
    Inline(ArrayString<INLINE>),
    Boxed(Box<str>),
}

impl ShortText {
    /// Borrows a fixed text.
    pub const fn fixed(text: &'static str) -> Self {
        Self(Repr::Fixed(text))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Fixed(text) => text,
            Repr::Inline(text) => text,
            Repr::Boxed(text) => text,
        }
    }
}

impl From<&str> for ShortText {
    fn from(text: &str) -> Self {
        match ArrayString::from(text) {
            Ok(inline) => Self(Repr::Inline(inline)),
            Err(_) => Self(Repr::Boxed(text.into())),
        }
    }
}

impl From<String> for ShortText {
    fn from(text: String) -> Self {
        if text.len() <= INLINE {
            Self::from(text.as_str())
        } else {
            Self(Repr::Boxed(text.into_boxed_str()))
        }
    }
}

impl From<Box<str>> for ShortText {
    fn from(text: Box<str>) -> Self {
        Self(Repr::Boxed(text))
    }
}

impl From<Cow<'static, str>> for ShortText {
    fn from(text: Cow<'static, str>) -> Self {
        match text {
            Cow::Borrowed(text) => Self::fixed(text),
            Cow::Owned(text) => Self::from(text),
        }
    }
}

impl Deref for ShortText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for ShortText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ShortText {}

impl PartialEq<&str> for ShortText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ShortText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind(t: &ShortText) -> &'static str {
        match t.0 {
            Repr::Fixed(_) => "fixed",
            Repr::Inline(_) => "inline",
            Repr::Boxed(_) => "boxed",
        }
    }

    #[test]
    fn short_text_is_inline_long_text_boxed_fixed_text_borrowed() {
        let at_limit = "a".repeat(INLINE);
        let over = "a".repeat(INLINE + 1);
        assert_eq!(kind(&ShortText::from("")), "inline");
        assert_eq!(kind(&ShortText::from(at_limit.as_str())), "inline");
        assert_eq!(kind(&ShortText::from(at_limit.clone())), "inline");
        assert_eq!(kind(&ShortText::from(over.as_str())), "boxed");
        assert_eq!(kind(&ShortText::from(over.clone())), "boxed");
        assert_eq!(kind(&ShortText::fixed("is required")), "fixed");
        assert_eq!(
            kind(&ShortText::from(Cow::Borrowed("is required"))),
            "fixed"
        );
        assert_eq!(&*ShortText::from(at_limit.as_str()), at_limit);
        assert_eq!(&*ShortText::from(over.as_str()), over);
        // Six words: a `String` and a tag would be four, plus an allocation.
        assert_eq!(std::mem::size_of::<ShortText>(), 48);
    }

    #[test]
    fn it_compares_prints_and_serializes_as_its_text() {
        let t = ShortText::from("weakest_system_1");
        assert_eq!(t, ShortText::fixed("weakest_system_1"));
        assert_eq!(t, "weakest_system_1");
        assert_eq!(
            format!("{t} {t:?}"),
            "weakest_system_1 \"weakest_system_1\""
        );
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"weakest_system_1\"");
    }

    proptest! {
        /// Any text, multi-byte characters at the inline limit included, comes back unchanged.
        #[test]
        fn any_text_round_trips(text in ".{0,60}") {
            let borrowed = ShortText::from(text.as_str());
            let owned = ShortText::from(text.clone());
            prop_assert_eq!(borrowed.as_str(), text.as_str());
            prop_assert_eq!(owned.as_str(), text.as_str());
        }
    }
}
