//! The registry's HTTP security policy as plain decisions: which `Host` headers it answers (DNS
//! rebinding), which browser origins may call it (CORS and cross-site writes), which request
//! content types a JSON write may carry, and how a downloaded artifact is typed.
//!
//! What lives here: parsing `--allowed-hosts` and `--cors-allowed-origins` once at startup, and
//! pure functions over header values, unit-tested below. What does not: the tower layers and
//! response headers that apply these decisions to requests (`api/security.rs`).

use std::net::IpAddr;

use axum::http::uri::Authority;

use crate::config::RegistryConfig;
use crate::error::{Error, Result};

/// One `--allowed-hosts` entry: a host name or IP address, and a port unless any port will do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostEntry {
    /// Lowercase, without a trailing dot; IPv6 addresses keep their brackets (`[::1]`).
    host: String,
    port: Option<u16>,
}

/// The `Host` headers the registry answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    /// `*` was given: every host is answered.
    any: bool,
    entries: Vec<HostEntry>,
    /// Also answer private-network IP addresses (RFC 1918, RFC 4193) at any port: the default
    /// when bound to every interface, as MLflow 3.5 does, so colleagues can reach the server
    /// by its LAN address.
    private_networks: bool,
}

/// The host and port of a `Host` header or `:authority`, or `None` when it is not one.
fn split_authority(value: &str) -> Option<(String, Option<u16>)> {
    let authority: Authority = value.trim().parse().ok()?;
    // `user@host` is an authority but never a Host header.
    if authority.as_str().contains('@') {
        return None;
    }
    // A port, when there is one, is a number (`http` keeps `host:abc` as an authority).
    let after_host = &authority.as_str()[authority.host().len()..];
    if !after_host.is_empty() && authority.port_u16().is_none() {
        return None;
    }
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some((host, authority.port_u16()))
}

/// An IP address literal as it appears in a Host header (`10.0.0.7`, `[fd00::1]`).
fn ip_literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn is_private_network(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_private(),
        // fc00::/7, unique local addresses.
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

impl AllowedHosts {
    /// Parses `--allowed-hosts` entries (`host`, `host:port`, `[v6]:port` or `*`); blank entries
    /// are skipped. An empty list is an error: use [`AllowedHosts::defaults`] instead.
    pub fn parse(entries: &[String]) -> Result<AllowedHosts> {
        let mut allowed = AllowedHosts {
            any: false,
            entries: Vec::new(),
            private_networks: false,
        };
        for entry in entries.iter().map(|entry| entry.trim()) {
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                allowed.any = true;
                continue;
            }
            let (host, port) = split_authority(entry).ok_or_else(|| {
                Error::invalid(format!(
                    "invalid --allowed-hosts entry '{entry}': expected host, host:port, [ipv6]:port or *"
                ))
            })?;
            allowed.entries.push(HostEntry { host, port });
        }
        if !allowed.any && allowed.entries.is_empty() {
            return Err(Error::invalid(
                "--allowed-hosts names no host; leave it unset for the defaults, or give * to answer any host",
            ));
        }
        Ok(allowed)
    }

    /// The default: the address the server binds to, `localhost`, `127.0.0.1`, `[::1]` and this
    /// machine's hostname, at any port; bound to `0.0.0.0` or `::`, also private-network
    /// addresses.
    pub fn defaults(bind_host: &str, hostname: &str) -> AllowedHosts {
        let mut entries = Vec::new();
        let mut add = |host: String| {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            if !host.is_empty() && !entries.iter().any(|entry: &HostEntry| entry.host == host) {
                entries.push(HostEntry { host, port: None });
            }
        };
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            add(host.to_owned());
        }
        add(hostname.to_owned());
        let bind_address = ip_literal(bind_host);
        match bind_address {
            Some(IpAddr::V6(v6)) => add(format!("[{v6}]")),
            Some(IpAddr::V4(v4)) => add(v4.to_string()),
            None => add(bind_host.to_owned()),
        }
        AllowedHosts {
            any: false,
            entries,
            private_networks: bind_address.is_some_and(|address| address.is_unspecified()),
        }
    }

    /// Whether a request whose `Host` (or `:authority`) is `value` is answered.
    pub fn allows(&self, value: &str) -> bool {
        if self.any {
            return true;
        }
        let Some((host, port)) = split_authority(value) else {
            return false;
        };
        let listed = self.entries.iter().any(|entry| {
            entry.host == host && (entry.port.is_none() || entry.port == Some(port.unwrap_or(80)))
        });
        listed || (self.private_networks && ip_literal(&host).is_some_and(is_private_network))
    }

    /// The entries as `--allowed-hosts` would take them, for the startup log.
    pub fn describe(&self) -> String {
        let mut shown: Vec<String> = self
            .entries
            .iter()
            .map(|entry| match entry.port {
                Some(port) => format!("{}:{port}", entry.host),
                None => entry.host.clone(),
            })
            .collect();
        if self.private_networks {
            shown.push("private-network addresses".to_owned());
        }
        if self.any {
            shown.push("*".to_owned());
        }
        shown.join(",")
    }
}

/// Parses `--cors-allowed-origins` entries into the exact `Origin` values browsers send
/// (`scheme://host[:port]`, lowercase, default port left out); blank entries are skipped.
pub fn parse_cors_origins(entries: &[String]) -> Result<Vec<String>> {
    let mut origins = Vec::new();
    for entry in entries.iter().map(|entry| entry.trim()) {
        if entry.is_empty() {
            continue;
        }
        let invalid = |why: &str| {
            Error::invalid(format!(
                "invalid --cors-allowed-origins entry '{entry}': {why}"
            ))
        };
        if entry == "*" {
            return Err(invalid(
                "name each origin; allowing every origin would let any web page write to the registry",
            ));
        }
        let url = url::Url::parse(entry)
            .map_err(|_| invalid("expected an origin such as https://notebooks.example.com"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid("an origin is http:// or https:// and a host"));
        }
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return Err(invalid("an origin has no path, query or user"));
        }
        let origin = url.origin().ascii_serialization();
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

/// Whether `origin` (an `Origin` header) is the server's own origin as the request reached it:
/// the same host and port as its `Host` header, over http or https (behind a TLS proxy).
pub fn is_same_origin(origin: &str, host_header: &str) -> bool {
    let Ok(origin) = url::Url::parse(origin.trim()) else {
        return false;
    };
    if !matches!(origin.scheme(), "http" | "https") {
        return false;
    }
    let (Some(origin_host), Some(origin_port)) =
        (origin.host_str(), origin.port_or_known_default())
    else {
        return false;
    };
    let Some((host, port)) = split_authority(host_header) else {
        return false;
    };
    let default_port = if origin.scheme() == "https" { 443 } else { 80 };
    origin_host
        .trim_end_matches('.')
        .eq_ignore_ascii_case(&host)
        && port.unwrap_or(default_port) == origin_port
}

/// The policy `api::security` applies to every request, parsed once from the configuration.
#[derive(Debug, Clone)]
pub struct SecurityPolicy {
    pub allowed_hosts: AllowedHosts,
    /// Exact `Origin` values allowed across origins; empty means no CORS at all.
    pub cors_allowed_origins: Vec<String>,
}

impl SecurityPolicy {
    /// Reads `--allowed-hosts` (else the defaults for `--host` and `hostname`) and
    /// `--cors-allowed-origins`; a malformed entry is an error naming it.
    pub fn from_config(config: &RegistryConfig, hostname: &str) -> Result<SecurityPolicy> {
        let given_any = config
            .allowed_hosts
            .iter()
            .any(|entry| !entry.trim().is_empty());
        let allowed_hosts = if given_any {
            AllowedHosts::parse(&config.allowed_hosts)?
        } else {
            AllowedHosts::defaults(&config.host, hostname)
        };
        Ok(SecurityPolicy {
            allowed_hosts,
            cors_allowed_origins: parse_cors_origins(&config.cors_allowed_origins)?,
        })
    }
}

/// Whether a `Content-Type` header value is JSON (`application/json`, any parameters).
pub fn is_json_content_type(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Extensions of files a browser would interpret as text (markup, script, style, data): these
/// are served as `text/plain`, so they can never run as a page on the registry's origin.
const TEXT_EXTENSIONS: &[&str] = &[
    "html", "htm", "xhtml", "shtml", "svg", "svgz", "xml", "xsl", "xslt", "js", "mjs", "cjs",
    "css", "txt", "text", "log", "json", "jsonl", "ndjson", "md", "markdown", "rst", "csv", "tsv",
    "yaml", "yml", "toml", "ini", "cfg", "conf", "py", "ipynb", "r", "sql", "sh", "rtf", "vtt",
];

/// The content type a downloaded artifact is sent with: text-like files as UTF-8 plain text,
/// PNG, JPEG and GIF as themselves, everything else as bytes.
pub fn artifact_content_type(file_name: &str) -> &'static str {
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        other if TEXT_EXTENSIONS.contains(&other) => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Characters kept as they are in RFC 5987's `filename*`; everything else is percent-encoded.
const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="..."; filename*=UTF-8''...` for a file name: a plain ASCII fallback
/// (quotes, backslashes, control and non-ASCII characters replaced by `_`) and the exact name
/// percent-encoded, so no name can break out of the header.
pub fn attachment_disposition(file_name: &str) -> String {
    let fallback: String = file_name
        .chars()
        .map(|character| {
            let plain = character.is_ascii_graphic() || character == ' ';
            if plain && character != '"' && character != '\\' {
                character
            } else {
                '_'
            }
        })
        .collect();
    let fallback = if fallback.trim().is_empty() {
        "artifact".to_owned()
    } else {
        fallback
    };
    let encoded = percent_encoding::utf8_percent_encode(file_name, ATTR_CHAR);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        let entries: Vec<String> = entries.iter().map(|entry| (*entry).to_owned()).collect();
        AllowedHosts::parse(&entries).expect("entries parse")
    }

    #[test]
    fn allowed_host_entries_match_host_and_port() {
        let allowed = hosts(&["registry.corp", "10.1.2.3:5000", "[fd00::7]:80", " "]);
        let table = [
            ("registry.corp", true),
            ("REGISTRY.corp:5000", true),
            ("registry.corp.", true),
            ("10.1.2.3:5000", true),
            ("10.1.2.3:5001", false),
            ("10.1.2.3", false),
            ("[fd00::7]", true),
            ("[fd00::7]:8080", false),
            ("evil.example", false),
            ("registry.corp.evil.example", false),
            ("user@registry.corp", false),
            ("", false),
            ("registry.corp/path", false),
        ];
        for (host, expected) in table {
            assert_eq!(allowed.allows(host), expected, "{host:?}");
        }
        assert!(hosts(&["*"]).allows("anything.example:1"));
    }

    #[test]
    fn malformed_or_empty_allowed_hosts_are_refused_by_name() {
        for entries in [vec!["a b"], vec!["host:notaport"], vec![" ", ""]] {
            let entries: Vec<String> = entries.into_iter().map(str::to_owned).collect();
            let error = AllowedHosts::parse(&entries).unwrap_err().to_string();
            assert!(error.contains("--allowed-hosts"), "{error}");
        }
    }

    #[test]
    fn defaults_follow_the_bound_address() {
        let loopback = AllowedHosts::defaults("127.0.0.1", "workstation");
        for host in [
            "127.0.0.1:5000",
            "localhost:5000",
            "[::1]:5000",
            "workstation:5000",
        ] {
            assert!(loopback.allows(host), "{host}");
        }
        for host in ["192.168.1.20:5000", "evil.example:5000", "0.0.0.0:5000"] {
            assert!(!loopback.allows(host), "{host}");
        }
        let everywhere = AllowedHosts::defaults("0.0.0.0", "workstation");
        for host in [
            "192.168.1.20:5000",
            "10.0.0.1",
            "172.16.4.4:80",
            "[fd12::1]:5000",
        ] {
            assert!(everywhere.allows(host), "{host}");
        }
        for host in ["8.8.8.8:5000", "172.32.0.1", "evil.example:5000"] {
            assert!(!everywhere.allows(host), "{host}");
        }
        assert!(AllowedHosts::defaults("::", "w").allows("[fd00::1]:5000"));
        assert!(AllowedHosts::defaults("10.0.0.5", "w").allows("10.0.0.5:5000"));
        assert!(!AllowedHosts::defaults("10.0.0.5", "w").allows("10.0.0.6:5000"));
        assert!(AllowedHosts::defaults("::1", "w").allows("[::1]:5000"));
    }

    #[test]
    fn same_origin_compares_host_and_effective_port() {
        let table = [
            ("http://127.0.0.1:5000", "127.0.0.1:5000", true),
            ("http://LOCALHOST:5000", "localhost:5000", true),
            ("https://registry.corp", "registry.corp", true),
            ("http://registry.corp", "registry.corp:80", true),
            ("https://registry.corp", "registry.corp:80", false),
            ("http://127.0.0.1:5001", "127.0.0.1:5000", false),
            ("https://evil.example", "127.0.0.1:5000", false),
            ("null", "127.0.0.1:5000", false),
            ("file://", "127.0.0.1:5000", false),
            ("http://[::1]:5000", "[::1]:5000", true),
        ];
        for (origin, host, expected) in table {
            assert_eq!(is_same_origin(origin, host), expected, "{origin} vs {host}");
        }
    }

    #[test]
    fn cors_origins_are_normalised_and_checked() {
        let entries: Vec<String> = [
            "https://Notebooks.Example.com/",
            "http://localhost:3000",
            "https://a.example:443",
            "",
        ]
        .iter()
        .map(|entry| (*entry).to_owned())
        .collect();
        assert_eq!(
            parse_cors_origins(&entries).unwrap(),
            [
                "https://notebooks.example.com",
                "http://localhost:3000",
                "https://a.example"
            ]
        );
        for bad in [
            "*",
            "notebooks.example.com",
            "https://a.example/path",
            "ftp://a",
        ] {
            let error = parse_cors_origins(&[bad.to_owned()])
                .unwrap_err()
                .to_string();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn json_content_types() {
        for (value, expected) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("multipart/form-data; boundary=x", false),
            ("application/jsonp", false),
            ("", false),
        ] {
            assert_eq!(is_json_content_type(value), expected, "{value:?}");
        }
    }

    #[test]
    fn artifacts_are_typed_so_none_renders_as_a_page() {
        for (name, expected) in [
            ("report.html", "text/plain; charset=utf-8"),
            ("logo.SVG", "text/plain; charset=utf-8"),
            ("data.csv", "text/plain; charset=utf-8"),
            ("conda.yaml", "text/plain; charset=utf-8"),
            ("app.js", "text/plain; charset=utf-8"),
            ("plot.png", "image/png"),
            ("photo.JPEG", "image/jpeg"),
            ("anim.gif", "image/gif"),
            ("model.onnx", "application/octet-stream"),
            ("MLmodel", "application/octet-stream"),
            ("page.pdf", "application/octet-stream"),
            ("icon.webp", "application/octet-stream"),
        ] {
            assert_eq!(artifact_content_type(name), expected, "{name}");
        }
    }

    #[test]
    fn dispositions_cannot_break_out_of_the_header() {
        assert_eq!(
            attachment_disposition("notes one.txt"),
            "attachment; filename=\"notes one.txt\"; filename*=UTF-8''notes%20one.txt"
        );
        assert_eq!(
            attachment_disposition("a\"b\\c\r\nd.html"),
            "attachment; filename=\"a_b_c__d.html\"; filename*=UTF-8''a%22b%5Cc%0D%0Ad.html"
        );
        assert_eq!(
            attachment_disposition("résumé.pdf"),
            "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
        );
        assert_eq!(
            attachment_disposition(" "),
            "attachment; filename=\"artifact\"; filename*=UTF-8''%20"
        );
    }
}
