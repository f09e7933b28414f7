//! What tests of several crates share (a dev-dependency only).

pub mod images;

/// Whether what a test needs (a GPU backend, a library such as onnxruntime, the shared
/// data set, a browser) is here: `available!("chromium", present)`. Without it the test
/// says so and skips, unless `OGPU_TEST_REQUIRE` names it (CI names what it installs),
/// where it fails rather than skips in silence. Every skip is also written to the file
/// `OGPU_SKIP_LOG` names, with the crate and test, for CI to list at the end: a skip must
/// not look like a pass.
#[macro_export]
macro_rules! available {
    ($what:expr, $present:expr) => {
        $crate::available(env!("CARGO_CRATE_NAME"), $what, $present)
    };
}

/// [`available!`] for the tests of `krate`.
pub fn available(krate: &str, what: &str, present: bool) -> bool {
    let required = std::env::var("OGPU_TEST_REQUIRE").unwrap_or_default();
    let required = required.split(',').any(|name| name.trim() == what);
    assert!(present || !required, "OGPU_TEST_REQUIRE names {what}, but this machine has none");
    if !present {
        let test = std::thread::current().name().unwrap_or("a test").to_string();
        println!("skipped: {test}: no {what} on this machine");
        if let Some(log) = std::env::var_os("OGPU_SKIP_LOG") {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("the skip log opens");
            writeln!(file, "{krate} {test}: no {what}").expect("the skip log is written");
        }
    }
    present
}
