//! Store keys: `<kind>/<name>`, both parts matching `[a-zA-Z0-9-]+` (upstream's rule,
//! `^[a-zA-Z0-9-]+/[a-zA-Z0-9-]+$`).
//!
//! A key whose name is 64 lowercase hex digits is *content-addressed*: its value is the blob
//! whose SHA-256 is that name (`manifests/<hash>`, `policies/<hash>`, `transitions/<hash>`).
//! Every other key (`transitions/latest`) is *mutable* and only changes by compare-and-swap.
//!
//! The alphabet keeps keys safe as file names (no `.`, `/` or empty part) and as ConfigMap
//! names ([`configmap_name`]).

use contrast_core::history::{BlobKind, Hash, LATEST_TRANSITION_KEY};

/// Prefix of every ConfigMap that holds a store key.
pub const CONFIGMAP_PREFIX: &str = "contrast-store-";

/// Why a key or kind was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key does not have exactly one `/`.
    #[error("invalid key {key:?}: expected <kind>/<name> with exactly one '/'")]
    NotKindSlashName {
        /// The rejected key.
        key: String,
    },
    /// A part is empty.
    #[error("invalid key {key:?}: the {part} is empty")]
    EmptyPart {
        /// The rejected key (or kind).
        key: String,
        /// `kind` or `name`.
        part: &'static str,
    },
    /// A part has a character outside `[a-zA-Z0-9-]`.
    #[error(
        "invalid key {key:?}: the {part} contains {character:?}, only ASCII letters, digits and '-' are allowed"
    )]
    BadCharacter {
        /// The rejected key (or kind).
        key: String,
        /// `kind` or `name`.
        part: &'static str,
        /// The first character not allowed.
        character: char,
    },
}

/// A validated store key `<kind>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    key: String,
    slash: usize,
}

impl Key {
    /// Parses and validates `<kind>/<name>`.
    pub fn parse(key: &str) -> Result<Key, KeyError> {
        let mut parts = key.split('/');
        let (Some(kind), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::NotKindSlashName {
                key: key.to_owned(),
            });
        };
        check_part(key, "kind", kind)?;
        check_part(key, "name", name)?;
        Ok(Key {
            key: key.to_owned(),
            slash: kind.len(),
        })
    }

    /// Builds `<kind>/<name>` from its validated parts.
    pub fn from_parts(kind: &str, name: &str) -> Result<Key, KeyError> {
        let key = format!("{kind}/{name}");
        check_part(&key, "kind", kind)?;
        check_part(&key, "name", name)?;
        Ok(Key {
            key,
            slash: kind.len(),
        })
    }

    /// The content-addressed key of a history blob: `<kind>/<lowercase hex hash>`.
    #[must_use]
    pub fn blob(kind: BlobKind, hash: &Hash) -> Key {
        Key {
            key: kind.key(hash),
            slash: kind.as_str().len(),
        }
    }

    /// The key of the signed head, `transitions/latest`.
    #[must_use]
    pub fn latest_transition() -> Key {
        Key {
            key: LATEST_TRANSITION_KEY.to_owned(),
            slash: BlobKind::Transition.as_str().len(),
        }
    }

    /// The whole key, `<kind>/<name>`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The part before the `/`.
    #[must_use]
    pub fn kind(&self) -> &str {
        self.key.get(..self.slash).unwrap_or_default()
    }

    /// The part after the `/`.
    #[must_use]
    pub fn name(&self) -> &str {
        self.key.get(self.slash + 1..).unwrap_or_default()
    }

    /// The content address if the name is 64 lowercase hex digits, else `None` (a mutable key).
    #[must_use]
    pub fn content_hash(&self) -> Option<Hash> {
        let name = self.name();
        if name.len() != 64 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        contrast_core::hexstring::decode_array::<32>(name).ok()
    }

    /// The name of the ConfigMap that holds this key: `contrast-store-<kind>-<name>`.
    #[must_use]
    pub fn configmap_name(&self) -> String {
        format!("{CONFIGMAP_PREFIX}{}-{}", self.kind(), self.name())
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key)
    }
}

impl std::str::FromStr for Key {
    type Err = KeyError;

    fn from_str(key: &str) -> Result<Key, KeyError> {
        Key::parse(key)
    }
}

/// Checks a kind on its own (the argument of `list`).
pub fn check_kind(kind: &str) -> Result<(), KeyError> {
    check_part(kind, "kind", kind)
}

/// The ConfigMap name of a store key, as upstream's ConfigMap store names them: the key must
/// match `^[a-zA-Z0-9-]+/[a-zA-Z0-9-]+$` and the name is `contrast-store-` followed by the key
/// with `/` replaced by `-` (`foo/bar` → `contrast-store-foo-bar`).
pub fn configmap_name(key: &str) -> Result<String, KeyError> {
    Key::parse(key).map(|key| key.configmap_name())
}

fn check_part(key: &str, part: &'static str, value: &str) -> Result<(), KeyError> {
    if value.is_empty() {
        return Err(KeyError::EmptyPart {
            key: key.to_owned(),
            part,
        });
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        Some(character) => Err(KeyError::BadCharacter {
            key: key.to_owned(),
            part,
            character,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parts_and_content_hash() {
        let key = Key::parse("transitions/latest").unwrap();
        assert_eq!((key.kind(), key.name()), ("transitions", "latest"));
        assert_eq!(key, Key::latest_transition());
        assert_eq!(key.content_hash(), None);

        let hash = [0xab; 32];
        let blob = Key::blob(BlobKind::Policy, &hash);
        assert_eq!(blob.as_str(), format!("policies/{}", "ab".repeat(32)));
        assert_eq!(blob.kind(), "policies");
        assert_eq!(blob.content_hash(), Some(hash));
        assert_eq!(Key::parse(blob.as_str()).unwrap(), blob);
        // Upper-case hex is a valid key but not a content address.
        assert_eq!(
            Key::parse(&format!("policies/{}", "AB".repeat(32)))
                .unwrap()
                .content_hash(),
            None
        );
    }

    #[test]
    fn rejections_name_the_part() {
        assert_eq!(
            Key::parse("foo/bar/baz"),
            Err(KeyError::NotKindSlashName {
                key: "foo/bar/baz".into()
            })
        );
        assert_eq!(
            Key::parse("foo"),
            Err(KeyError::NotKindSlashName { key: "foo".into() })
        );
        assert_eq!(
            Key::parse("/bar"),
            Err(KeyError::EmptyPart {
                key: "/bar".into(),
                part: "kind"
            })
        );
        assert_eq!(
            Key::parse("foo/"),
            Err(KeyError::EmptyPart {
                key: "foo/".into(),
                part: "name"
            })
        );
        assert_eq!(
            Key::parse("foo/b.r"),
            Err(KeyError::BadCharacter {
                key: "foo/b.r".into(),
                part: "name",
                character: '.'
            })
        );
        assert_eq!(
            Key::from_parts("fö", "x"),
            Err(KeyError::BadCharacter {
                key: "fö/x".into(),
                part: "kind",
                character: 'ö'
            })
        );
        assert!(check_kind("transitions").is_ok());
        assert!(matches!(
            check_kind("a/b"),
            Err(KeyError::BadCharacter { character: '/', .. })
        ));
    }
}
