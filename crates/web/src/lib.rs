//! The pages of the OpenGPU Network's dashboards and explorer, embedded in the binary so
//! they work with no internet and nothing is fetched from a CDN.
//!
//! Each page is plain HTML with ES modules and CSS under `assets/` (no bundler, no inline
//! script: the servers send a Content-Security-Policy that forbids it); charts are uPlot,
//! vendored under `assets/vendor/` (see its README). The servers serve [`get`]`(path)` at
//! `/assets/{path}`, and an app's `index.html` at `/`.

/// What the servers send with every page: scripts, styles and connections from the page's
/// own origin only (uPlot sets inline styles, hence `'unsafe-inline'` for styles alone),
/// and no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The file's bytes.
    pub bytes: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path)) as &[u8])),*]
    };
}

/// Every embedded file, by its path under `assets/`.
static ASSETS: &[(&str, &[u8])] = assets![
    "common/base.css",
    "common/dash.js",
    "customer/index.html",
    "customer/app.js",
    "provider/index.html",
    "provider/app.js",
    "explorer/index.html",
    "explorer/app.js",
    "vendor/uPlot.iife.min.js",
    "vendor/uPlot.min.css",
    // MIT asks that the notice go wherever uPlot goes: into the binary with it.
    "vendor/uPlot.LICENSE",
];

/// The embedded file at `path` (relative to `assets/`, such as `customer/app.js`).
pub fn get(path: &str) -> Option<Asset> {
    let (_, bytes) = ASSETS.iter().find(|(known, _)| *known == path)?;
    Some(Asset { bytes, content_type: content_type(path) })
}

/// Every embedded path.
pub fn paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(path, _)| *path)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("LICENSE") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `/assets/...` paths a file refers to, in `src="..."`, `href="..."` and module
    /// imports (`from '../common/x.js'`, relative to the file).
    fn references(path: &str) -> Vec<String> {
        let text = std::str::from_utf8(get(path).unwrap().bytes).unwrap();
        let folder = path.rsplit_once('/').map_or("", |(folder, _)| folder);
        let quoted = |marker: &str| {
            text.split(marker)
                .skip(1)
                .filter_map(|rest| rest.split(['"', '\'']).next())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let absolute = [quoted("src=\""), quoted("href=\"")].concat();
        let absolute = absolute.iter().filter_map(|link| link.strip_prefix("/assets/")).map(str::to_string);
        let imports = [quoted("from '"), quoted("from \"")].concat();
        let imports = imports.iter().map(|link| {
            let mut parts: Vec<&str> = folder.split('/').collect();
            for part in link.split('/') {
                match part {
                    "." => {}
                    ".." => {
                        parts.pop();
                    }
                    name => parts.push(name),
                }
            }
            parts.join("/")
        });
        absolute.chain(imports).collect()
    }

    #[test]
    fn every_file_a_page_loads_is_embedded() {
        for page in paths().filter(|path| path.ends_with(".html") || path.ends_with(".js")) {
            for reference in references(page) {
                assert!(get(&reference).is_some(), "{page} loads {reference}, which is not embedded");
            }
        }
        for app in ["customer", "provider"] {
            assert_eq!(references(&format!("{app}/index.html")).len(), 4, "{app}: the stylesheets and scripts");
            assert_eq!(references(&format!("{app}/app.js")), ["common/dash.js"]);
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(get("customer/index.html").unwrap().content_type, "text/html; charset=utf-8");
        assert_eq!(get("common/dash.js").unwrap().content_type, "text/javascript; charset=utf-8");
        assert_eq!(get("vendor/uPlot.min.css").unwrap().content_type, "text/css; charset=utf-8");
        assert!(get("customer/missing.js").is_none());
        assert!(get("../Cargo.toml").is_none(), "only what is embedded, never a path on disk");
    }
}
