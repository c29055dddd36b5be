//! An error and its causes as one line for a person, each cause said once.
//!
//! Many errors write their cause into their own message *and* return it from `source()` (the
//! two conventions of Rust error types meet in one chain), so printing the chain naively
//! repeats it: "cannot connect: connection refused: connection refused". The binaries print
//! errors through [`describe`], which leaves out a cause whose text its predecessor already
//! contains.

use std::error::Error;

/// `error` and its chain of sources joined by `": "`, leaving out every source whose message
/// the text so far already contains.
#[must_use]
pub fn describe(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !message.is_empty() && !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer {
        message: String,
        source: Option<Box<Layer>>,
    }

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.message)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.source
                .as_deref()
                .map(|layer| layer as &(dyn Error + 'static))
        }
    }

    fn chain(messages: &[&str]) -> Layer {
        messages
            .iter()
            .rev()
            .fold(None, |source, message| {
                Some(Layer {
                    message: (*message).to_owned(),
                    source: source.map(Box::new),
                })
            })
            .unwrap_or_else(|| Layer {
                message: String::new(),
                source: None,
            })
    }

    #[test]
    fn says_each_cause_once() {
        let error = chain(&[
            "cannot connect to host:1313: connection refused (os error 111)",
            "connection refused (os error 111)",
        ]);
        assert_eq!(
            describe(&error),
            "cannot connect to host:1313: connection refused (os error 111)"
        );
    }

    #[test]
    fn keeps_causes_the_message_does_not_carry() {
        let error = chain(&["could not read the manifest", "permission denied", ""]);
        assert_eq!(
            describe(&error),
            "could not read the manifest: permission denied"
        );
    }
}
