//! Reading variables while collecting every problem, and the value rules
//! several settings share (booleans, counts, ports, https URLs).

use std::net::IpAddr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::{Env, Problem, Problems, parse_go_duration};

/// Reads variables and collects problems, so one run reports all of them.
pub(super) struct Reader<'a> {
    pub(super) env: &'a Env,
    problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(env: &'a Env) -> Self {
        Self {
            env,
            problems: Vec::new(),
        }
    }

    pub(super) fn problem(&mut self, variable: &'static str, message: impl Into<String>) {
        self.problems.push(Problem {
            variable,
            message: message.into(),
        });
    }

    pub(super) fn optional(&self, variable: &'static str) -> Option<&'a str> {
        self.env.get(variable)
    }

    pub(super) fn required(&mut self, variable: &'static str, hint: &str) -> Option<&'a str> {
        let value = self.env.get(variable);
        if value.is_none() {
            self.problem(variable, format!("is required; {hint}"));
        }
        value
    }

    /// A secret: its value is never part of any message.
    pub(super) fn secret(
        &mut self,
        variable: &'static str,
        required_hint: Option<&str>,
    ) -> Option<SecretString> {
        match (self.env.get(variable), required_hint) {
            (Some(value), _) => Some(SecretString::from(value.to_owned())),
            (None, Some(hint)) => {
                self.problem(variable, format!("is required; {hint}"));
                None
            }
            (None, None) => None,
        }
    }

    pub(super) fn parsed<T>(
        &mut self,
        variable: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.env.get(variable) {
            None => default,
            Some(raw) => parse(raw).unwrap_or_else(|message| {
                self.problem(variable, message);
                default
            }),
        }
    }

    pub(super) fn duration(&mut self, variable: &'static str, default: Duration) -> Duration {
        self.parsed(variable, default, parse_go_duration)
    }

    pub(super) fn bool(&mut self, variable: &'static str, default: bool) -> bool {
        self.parsed(variable, default, parse_bool)
    }

    pub(super) fn finish<T>(self, value: Option<T>) -> Result<T, Problems> {
        match value {
            Some(value) if self.problems.is_empty() => Ok(value),
            _ => Err(Problems(self.problems)),
        }
    }
}

/// Go's `strconv.ParseBool`.
pub(super) fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("{other:?} is not a boolean; use true or false")),
    }
}

pub(super) fn parse_count(raw: &str) -> Result<u32, String> {
    raw.parse::<u32>()
        .map_err(|_| format!("{raw:?} is not a whole number of zero or more"))
}

pub(super) fn parse_port(raw: &str) -> Result<u16, String> {
    raw.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{raw:?} is not a port number from 1 to 65535"))
}

/// `http://` is accepted only for loopback hosts (local development).
pub(super) fn require_https(r: &mut Reader<'_>, variable: &'static str, raw: &str) -> Option<Url> {
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(e) => {
            r.problem(variable, format!("is not a URL ({e}); expected https://…"));
            return None;
        }
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Some(url),
        "http" if loopback => Some(url),
        _ => {
            r.problem(
                variable,
                "must use https:// (plain http:// is accepted only for loopback hosts in local development)",
            );
            None
        }
    }
}
