//! The rules of fetching, without I/O: where a proxied request goes, how long to wait before a
//! retry, and when the collateral proxy is skipped. Time is a parameter.

use std::time::{Duration, Instant, SystemTime};

use crate::error::ConfigError;

/// The URL of `original` (a KDS URL) through the collateral proxy at `proxy_base`: the proxy's
/// scheme, host and path prefix, then the original path and query; the original host is
/// dropped (upstream's rewrite: `<proxy base><original path>[?query]`).
///
/// # Errors
/// [`ConfigError`] if either is not an absolute `http`/`https` URL, or the proxy base has a
/// query.
pub fn proxied_url(proxy_base: &str, original: &str) -> Result<String, ConfigError> {
    let base = parse_http_url("the collateral proxy", proxy_base)?;
    if base.query().is_some() {
        return Err(ConfigError {
            field: "the collateral proxy",
            value: proxy_base.to_owned(),
            reason: "a base URL must not have a query",
        });
    }
    let original = parse_http_url("the KDS URL", original)?;
    let path_and_query = original
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    Ok(format!(
        "{}{path_and_query}",
        proxy_base.trim_end_matches('/')
    ))
}

/// `value` as an absolute `http` or `https` URL.
///
/// # Errors
/// [`ConfigError`] naming `field`.
pub fn parse_http_url(field: &'static str, value: &str) -> Result<http::Uri, ConfigError> {
    let error = |reason| ConfigError {
        field,
        value: value.to_owned(),
        reason,
    };
    let uri: http::Uri = value
        .parse()
        .map_err(|_| error("not a URL (expected e.g. https://kdsintf.amd.com)"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err(error("the scheme must be http or https")),
        None => {
            return Err(error(
                "not an absolute URL (expected a scheme, e.g. https://)",
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(error("the URL has no host"));
    }
    Ok(uri)
}

/// The delay a `Retry-After` header asks for (RFC 9110 §10.2.3): delta-seconds, or an HTTP-date
/// (a date in the past is no delay). `None` for anything else.
#[must_use]
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Longer than u64 seconds is "a very long time"; saturate.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How often and how patiently one source is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per source (at least 1).
    pub attempts: u32,
    /// The delay before the second attempt; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest delay between two attempts of our choosing.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a server asking for more ends the attempts on that
    /// source (the error says what it asked).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, 500 ms doubling to 5 s, `Retry-After` up to 30 s.
    fn default() -> Self {
        Self {
            attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// Wait this long, then try the same source again.
    RetryAfter(Duration),
    /// Stop asking this source.
    GiveUp,
}

impl RetryPolicy {
    /// After failed attempt number `attempt` (1-based): retry (with the delay) if the failure
    /// is `transient` and attempts remain; a `Retry-After` within
    /// [`max_retry_after`](Self::max_retry_after) replaces the backoff, a longer one gives up.
    #[must_use]
    pub fn next_step(
        &self,
        attempt: u32,
        transient: bool,
        retry_after: Option<Duration>,
    ) -> NextStep {
        if !transient || attempt >= self.attempts.max(1) {
            return NextStep::GiveUp;
        }
        match retry_after {
            Some(asked) if asked > self.max_retry_after => NextStep::GiveUp,
            Some(asked) => NextStep::RetryAfter(asked),
            None => {
                let doublings = attempt.saturating_sub(1).min(16);
                let backoff = self
                    .initial_backoff
                    .saturating_mul(1 << doublings)
                    .min(self.max_backoff);
                NextStep::RetryAfter(backoff)
            }
        }
    }
}

/// Upstream's proxy rule: a proxy that failed a request's attempts is skipped (requests go to
/// the KDS directly) for a cooldown.
#[derive(Clone, Copy, Debug)]
pub struct ProxyCooldown {
    cooldown: Duration,
    until: Option<Instant>,
}

impl ProxyCooldown {
    /// Upstream's cooldown: two minutes.
    pub const DEFAULT: Duration = Duration::from_secs(120);

    /// A proxy in good standing, skipped for `cooldown` after a failure.
    #[must_use]
    pub fn new(cooldown: Duration) -> Self {
        Self {
            cooldown,
            until: None,
        }
    }

    /// Whether requests at `now` go through the proxy.
    #[must_use]
    pub fn use_proxy(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| now >= until)
    }

    /// The proxy failed at `now`: skip it until `now + cooldown`.
    pub fn failed(&mut self, now: Instant) {
        self.until = now.checked_add(self.cooldown);
    }

    /// The proxy answered: use it again.
    pub fn succeeded(&mut self) {
        self.until = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn proxied_url_keeps_path_and_query_and_drops_the_host() {
        let kds =
            "https://kdsintf.amd.com/vcek/v1/Milan/abcd?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115";
        assert_eq!(
            proxied_url("http://collateral-proxy.contrast:8080", kds).unwrap(),
            "http://collateral-proxy.contrast:8080/vcek/v1/Milan/abcd?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"
        );
        assert_eq!(
            proxied_url(
                "http://proxy/prefix/",
                "https://kdsintf.amd.com/vcek/v1/Genoa/crl"
            )
            .unwrap(),
            "http://proxy/prefix/vcek/v1/Genoa/crl"
        );
    }

    #[test]
    fn bad_urls_are_refused_with_the_field() {
        for (base, reason) in [
            ("collateral-proxy:8080", "scheme"),
            ("ftp://proxy", "http or https"),
            ("http://proxy/?x=1", "query"),
            ("not a url", "not a URL"),
        ] {
            let error = proxied_url(base, "https://kdsintf.amd.com/vcek/v1/Milan/crl").unwrap_err();
            assert_eq!(error.field, "the collateral proxy");
            assert!(error.to_string().contains(reason), "{base}: {error}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Dec 2026 10:00:00 GMT").unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Sun, 06 Dec 2026 10:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Sun, 06 Dec 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for garbage in ["", "-1", "1.5", "soon", "Sun, 99 Dec 2026"] {
            assert_eq!(retry_after(garbage, now), None, "{garbage:?}");
        }
    }

    #[test]
    fn backoff_doubles_honours_retry_after_and_stops() {
        let policy = RetryPolicy {
            attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(10),
        };
        let ms = Duration::from_millis;
        assert_eq!(
            policy.next_step(1, true, None),
            NextStep::RetryAfter(ms(100))
        );
        assert_eq!(
            policy.next_step(2, true, None),
            NextStep::RetryAfter(ms(200))
        );
        assert_eq!(
            policy.next_step(3, true, None),
            NextStep::RetryAfter(ms(250))
        );
        assert_eq!(policy.next_step(4, true, None), NextStep::GiveUp);
        assert_eq!(policy.next_step(1, false, None), NextStep::GiveUp);
        assert_eq!(
            policy.next_step(1, true, Some(Duration::from_secs(7))),
            NextStep::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            policy.next_step(1, true, Some(Duration::from_secs(11))),
            NextStep::GiveUp
        );
    }

    #[test]
    fn a_failed_proxy_is_skipped_for_the_cooldown() {
        let start = Instant::now();
        let mut proxy = ProxyCooldown::new(ProxyCooldown::DEFAULT);
        assert!(proxy.use_proxy(start));
        proxy.failed(start);
        assert!(!proxy.use_proxy(start + Duration::from_secs(119)));
        assert!(proxy.use_proxy(start + Duration::from_secs(120)));
        proxy.failed(start);
        proxy.succeeded();
        assert!(proxy.use_proxy(start));
    }
}
