//! Image archives as `docker save`, `podman save` and `skopeo` write them, built here
//! entry by entry: good ones stack into the root filesystem they describe; hostile ones
//! are refused by name with nothing written outside the cache, and the cache stays
//! within its limit.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ogpu_container::{Cache, Digest, Image, ImageConfig, ImageError, Limits};
use serde_json::json;

/// One entry of a layer, written raw: names are not checked, so hostile ones can be.
enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    CharDevice(&'a str),
}

fn raw_name(slot: &mut [u8], name: &str) {
    slot.fill(0);
    slot[..name.len()].copy_from_slice(name.as_bytes());
}

/// A tar of `entries`, uncompressed.
fn layer(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_old();
        let (name, data, kind, mode): (&str, &[u8], tar::EntryType, u32) = match entry {
            Entry::Dir(name) => (name, b"", tar::EntryType::Directory, 0o755),
            Entry::File(name, data, mode) => (name, data, tar::EntryType::Regular, *mode),
            Entry::Symlink(name, target) | Entry::HardLink(name, target) => {
                raw_name(&mut header.as_old_mut().linkname, target);
                let kind =
                    if matches!(entry, Entry::Symlink(..)) { tar::EntryType::Symlink } else { tar::EntryType::Link };
                (name, b"", kind, 0o777)
            }
            Entry::CharDevice(name) => (name, b"", tar::EntryType::Char, 0o666),
        };
        raw_name(&mut header.as_old_mut().name, name);
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn config() -> serde_json::Value {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Entrypoint": ["python3"], "Cmd": ["train.py"], "Env": ["PATH=/usr/bin"], "WorkingDir": "/app" },
    })
}

/// A tar of `files` (path and bytes): the outer archive.
fn archive(path: &Path, files: &[(String, Vec<u8>)]) -> PathBuf {
    let mut builder = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, bytes.as_slice()).unwrap();
    }
    builder.finish().unwrap();
    path.to_path_buf()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    json!({ "mediaType": media_type, "digest": Digest::of(bytes).to_string(), "size": bytes.len() })
}

/// An OCI layout archive (what `skopeo copy ... oci-archive:` writes) of `layers`; the
/// layer at `tampered`, if any, is stored with a byte changed after the manifest named it.
fn oci_archive(dir: &Path, layers: &[Vec<u8>], tampered: Option<usize>) -> PathBuf {
    let config = serde_json::to_vec(&config()).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|l| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l)).collect::<Vec<_>>(),
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [descriptor("application/vnd.oci.image.manifest.v1+json", &manifest)],
    }))
    .unwrap();
    let blob = |bytes: &[u8]| format!("blobs/sha256/{}", Digest::of(bytes).hex());
    let mut files = vec![
        ("oci-layout".to_string(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json".to_string(), index),
        (blob(&manifest), manifest.clone()),
        (blob(&config), config.clone()),
    ];
    for (i, bytes) in layers.iter().enumerate() {
        let mut stored = bytes.clone();
        if tampered == Some(i) {
            let last = stored.iter().rposition(|b| *b != 0).unwrap();
            stored[last] ^= 1;
        }
        files.push((blob(bytes), stored));
    }
    archive(&dir.join("image.oci.tar"), &files)
}

/// A docker-archive (what `docker save` writes): uncompressed layers in directories of
/// their own, the config named by its digest with each layer's diff id.
fn docker_archive(dir: &Path, layers: &[Vec<u8>]) -> PathBuf {
    let mut config = config();
    config["rootfs"] =
        json!({ "type": "layers", "diff_ids": layers.iter().map(|l| Digest::of(l).to_string()).collect::<Vec<_>>() });
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let names: Vec<String> = (0..layers.len()).map(|i| format!("layer{i}/layer.tar")).collect();
    let manifest =
        serde_json::to_vec(&json!([{ "Config": config_name, "RepoTags": ["digits:latest"], "Layers": names }]))
            .unwrap();
    let mut files = vec![("manifest.json".to_string(), manifest), (config_name, config)];
    files.extend(names.into_iter().zip(layers.iter().cloned()));
    archive(&dir.join("image.docker.tar"), &files)
}

/// Two layers: the second replaces a file, removes one, and hides a directory's lower
/// contents.
fn two_layers() -> [Vec<u8>; 2] {
    let base = layer(&[
        Entry::Dir("app"),
        Entry::File("app/train.py", b"print('v1')", 0o644),
        Entry::File("app/old.txt", b"stale", 0o644),
        Entry::Dir("data"),
        Entry::File("data/lower.txt", b"lower", 0o644),
        Entry::Dir("usr"),
        Entry::Dir("usr/bin"),
        Entry::File("usr/bin/su", b"#!", 0o4755),
        Entry::HardLink("usr/bin/su-again", "usr/bin/su"),
        Entry::Symlink("usr/bin/python", "python3.11"),
        Entry::Symlink("bin", "/usr/bin"),
    ]);
    let top = layer(&[
        Entry::File("app/train.py", b"print('v2')", 0o755),
        Entry::File("app/.wh.old.txt", b"", 0o644),
        Entry::File("data/.wh..wh..opq", b"", 0o644),
        Entry::File("data/upper.txt", b"upper", 0o644),
    ]);
    [base, top]
}

/// Every path under `root` with what it is: `dir`, the file's bytes, or `-> target`.
fn listing(root: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    fn walk(root: &Path, dir: &Path, found: &mut Vec<(String, String)>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                found.push((name, format!("-> {}", fs::read_link(&path).unwrap().display())));
            } else if meta.is_dir() {
                found.push((name, "dir".into()));
                walk(root, &path, found);
            } else {
                found.push((name, String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned()));
            }
        }
    }
    walk(root, root, &mut found);
    found.sort();
    found
}

fn expected() -> Vec<(String, String)> {
    let mut want: Vec<(String, String)> = [
        ("app", "dir"),
        ("app/train.py", "print('v2')"),
        ("bin", "-> /usr/bin"),
        ("data", "dir"),
        ("data/upper.txt", "upper"),
        // The sandbox's mount points.
        ("dev", "dir"),
        ("input", "dir"),
        ("ogpu", "dir"),
        ("output", "dir"),
        ("proc", "dir"),
        ("tmp", "dir"),
        ("usr", "dir"),
        ("usr/bin", "dir"),
        ("usr/bin/python", "-> python3.11"),
        ("usr/bin/su", "#!"),
        ("usr/bin/su-again", "#!"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    want.sort();
    want
}

#[test]
fn oci_and_docker_archives_stack_into_the_root_filesystem_they_describe() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&dir.path().join("cache"), Limits::default(), 1 << 30).unwrap();
    let [base, top] = two_layers();

    let oci = Image::read(&oci_archive(dir.path(), &[gzip(&base), gzip(&top)], None)).unwrap();
    let want_config = ImageConfig {
        entrypoint: vec!["python3".into()],
        cmd: vec!["train.py".into()],
        env: vec!["PATH=/usr/bin".into()],
        working_dir: Some("/app".into()),
    };
    assert_eq!(oci.config, want_config);
    let rootfs = cache.rootfs(&oci).unwrap();
    assert_eq!(listing(&rootfs), expected());
    let su = fs::metadata(rootfs.join("usr/bin/su")).unwrap().permissions().mode();
    assert_eq!(su & 0o7777, 0o755, "the set-uid bit is cleared");
    assert_eq!(*cache.rootfs(&oci).unwrap(), *rootfs, "a second run finds it in the cache");

    let docker = Image::read(&docker_archive(dir.path(), &[base, top])).unwrap();
    assert_eq!(docker.config, want_config);
    assert_eq!(listing(&cache.rootfs(&docker).unwrap()), expected());
}

/// Reads and unpacks `layers` as an OCI archive into a fresh cache beside a directory
/// that must stay untouched; returns the error, having checked nothing was left behind.
fn refused(layers: &[Vec<u8>], limits: Limits, tampered: Option<usize>) -> ImageError {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cache = Cache::open(&cache_dir, limits, 1 << 30).unwrap();
    let victim = dir.path().join("victim");
    fs::create_dir(&victim).unwrap();
    let image = Image::read(&oci_archive(dir.path(), layers, tampered)).unwrap();
    let error = cache.rootfs(&image).unwrap_err();
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 0, "nothing was written outside the cache");
    assert!(!dir.path().join("escape").exists());
    assert_eq!(fs::read_dir(cache_dir.join("scratch")).unwrap().count(), 0, "no scratch left: {error}");
    assert_eq!(fs::read_dir(cache_dir.join("layers")).unwrap().count(), 0, "no layer kept: {error}");
    assert_eq!(fs::read_dir(cache_dir.join("rootfs")).unwrap().count(), 0, "no root filesystem kept: {error}");
    error
}

#[test]
fn hostile_archives_are_refused_by_name_and_write_nothing_outside_the_cache() {
    let hostile = |entries: &[Entry]| refused(&[layer(entries)], Limits::default(), None).to_string();
    for (entries, why) in [
        (vec![Entry::File("../escape", b"x", 0o644)], "climbs with .."),
        (vec![Entry::File("app/../../escape", b"x", 0o644)], "climbs with .."),
        (vec![Entry::File("/escape", b"x", 0o644)], "an absolute path"),
        (vec![Entry::Symlink("etc", "../../victim")], "leaves the image"),
        (vec![Entry::Dir("a"), Entry::Symlink("a/b", "../../../victim")], "leaves the image"),
        // A link that is fine in the sandbox (absolute, so inside the image) but that an
        // unpacker following links would write through on the host.
        (vec![Entry::Symlink("etc", "/tmp"), Entry::File("etc/passwd", b"x", 0o644)], "is a link or a file"),
        (vec![Entry::HardLink("stolen", "../escape")], "a hard link out of the layer"),
        (vec![Entry::CharDevice("dev/mem")], "a device node"),
        // Review finding: a whiteout of `..` removed the directory being stacked into.
        (vec![Entry::Dir("a"), Entry::File("a/.wh..", b"", 0o644)], "a whiteout of no file"),
    ] {
        let error = hostile(&entries);
        assert!(error.contains(why), "{why}: {error}");
    }

    let tampered = refused(&[layer(&[Entry::File("a", b"abc", 0o644)])], Limits::default(), Some(0));
    assert!(matches!(tampered, ImageError::DigestMismatch { .. }), "{tampered}");

    // 64 MiB of zeros compress to a few KiB: a bomb for a limit of 1 MiB.
    let zeros = vec![0u8; 64 << 20];
    let bomb = gzip(&layer(&[Entry::File("zeros", &zeros, 0o644)]));
    assert!(bomb.len() < 1 << 20);
    let limits = Limits { max_bytes: 1 << 20, ..Limits::default() };
    let error = refused(&[bomb], limits, None);
    assert!(matches!(error, ImageError::TooLarge { what: "bytes", limit } if limit == 1 << 20), "{error}");
    // Review finding: a long name is read into memory whole, whatever its length: headers
    // have an allowance of their own (64 MiB).
    let mut long_name = tar::Header::new_gnu();
    long_name.set_entry_type(tar::EntryType::GNULongName);
    long_name.set_size(65 << 20);
    long_name.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&long_name, std::io::repeat(b'a').take(65 << 20)).unwrap();
    let error = refused(&[gzip(&builder.into_inner().unwrap())], Limits::default(), None);
    assert!(matches!(error, ImageError::TooLarge { what: "bytes of headers", .. }), "{error}");

    let many: Vec<Entry> = (0..20).map(|_| Entry::Dir("d")).collect();
    let error = refused(&[layer(&many)], Limits { max_entries: 10, ..Limits::default() }, None);
    assert!(matches!(error, ImageError::TooLarge { what: "entries", .. }), "{error}");
}

/// Review finding: a layer in the cache was used for any image naming its digest, so
/// naming another client's layer was enough to read it. The archive must hold its bytes.
#[test]
fn a_cached_layer_serves_only_an_archive_that_holds_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(&dir.path().join("cache"), Limits::default(), 1 << 30).unwrap();
    let secret = layer(&[Entry::File("weights.bin", b"another client's model", 0o644)]);
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    fs::create_dir(&first).unwrap();
    fs::create_dir(&second).unwrap();
    cache.rootfs(&Image::read(&oci_archive(&first, std::slice::from_ref(&secret), None)).unwrap()).unwrap();
    let naming_it = Image::read(&oci_archive(&second, &[secret], Some(0))).unwrap();
    let error = cache.rootfs(&naming_it).unwrap_err();
    assert!(matches!(error, ImageError::DigestMismatch { .. }), "{error}");
}

#[test]
fn archives_that_are_not_images_say_what_they_lack() {
    let dir = tempfile::tempdir().unwrap();
    let plain = archive(&dir.path().join("plain.tar"), &[("hello.txt".into(), b"hi".to_vec())]);
    assert!(matches!(Image::read(&plain), Err(ImageError::NotAnImage)));
    fs::write(dir.path().join("junk.tar"), b"not a tar at all, not even close................").unwrap();
    assert!(Image::read(&dir.path().join("junk.tar")).is_err());
    let missing = archive(
        &dir.path().join("missing.tar"),
        &[(
            "index.json".into(),
            br#"{"manifests":[{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}]}"#
                .to_vec(),
        )],
    );
    let error = Image::read(&missing).unwrap_err().to_string();
    assert!(error.contains("lacks blobs/sha256/0000"), "{error}");
}

#[test]
fn the_cache_evicts_what_was_used_longest_ago_but_not_what_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let make = |name: &str, bytes: usize| {
        let sub = dir.path().join(name);
        fs::create_dir(&sub).unwrap();
        Image::read(&oci_archive(&sub, &[layer(&[Entry::File(name, &vec![7u8; bytes], 0o644)])], None)).unwrap()
    };
    let (old, new) = (make("old", 600_000), make("new", 600_000));
    let cache = Cache::open(&cache_dir, Limits::default(), 1_000_000).unwrap();
    let old_root = cache.rootfs(&old).unwrap().to_path_buf();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let new_root = cache.rootfs(&new).unwrap();
    let freed = cache.evict().unwrap();
    assert!((600_000..601_000).contains(&freed), "the older layer and its list of whiteouts: {freed}");
    assert!(!cache_dir.join("layers").join(old.layers[0].digest.hex()).exists(), "the older layer went");
    assert!(!old_root.exists(), "a root filesystem nobody uses goes first");
    assert!(cache_dir.join("layers").join(new.layers[0].digest.hex()).exists());
    assert!(new_root.join("new").is_file(), "the one in use stays");
    drop(new_root);
    assert_eq!(cache.evict().unwrap(), 0, "within the limit now");
}

/// `ogpu image build`'s writer: a directory tree becomes an archive that reads back as
/// the image it describes, the same tree giving the same bytes; what cannot be in an image
/// is refused by name.
#[test]
fn a_directory_tree_is_written_as_an_archive_that_reads_back_as_that_tree() {
    use ogpu_container::build::write_archive;
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let deep = format!("app/{}", "nested-directory-name/".repeat(6));
    fs::create_dir_all(tree.join(&deep)).unwrap();
    fs::write(tree.join(&deep).join("weights.bin"), "deep").unwrap();
    fs::write(tree.join("app/train.py"), "print('hi')").unwrap();
    fs::set_permissions(tree.join("app/train.py"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("train.py", tree.join("app/main.py")).unwrap();
    let config = ImageConfig {
        entrypoint: vec!["python3".into()],
        cmd: vec!["/app/train.py".into()],
        env: vec!["PATH=/usr/bin".into()],
        working_dir: Some("/app".into()),
    };
    let [first, second] = ["first.tar", "second.tar"].map(|name| dir.path().join(name));
    write_archive(&tree, &config, &first).unwrap();
    write_archive(&tree, &config, &second).unwrap();
    assert_eq!(fs::read(&first).unwrap(), fs::read(&second).unwrap(), "the same tree, the same archive");
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 3, "nothing left beside the archives: {names:?}");

    let image = Image::read(&first).unwrap();
    assert_eq!(image.config, config);
    let cache = Cache::open(&dir.path().join("cache"), Limits::default(), 1 << 30).unwrap();
    let rootfs = cache.rootfs(&image).unwrap();
    let mounts = ["dev", "input", "ogpu", "output", "proc", "tmp"];
    let unpacked: Vec<_> = listing(&rootfs).into_iter().filter(|(name, _)| !mounts.contains(&name.as_str())).collect();
    assert_eq!(unpacked, listing(&tree));
    assert_eq!(fs::metadata(rootfs.join("app/train.py")).unwrap().permissions().mode() & 0o777, 0o755);

    let fifo = std::ffi::CString::new(tree.join("app/pipe").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let refused = write_archive(&tree, &config, &dir.path().join("third.tar"));
    assert!(matches!(&refused, Err(ImageError::Hostile { path, .. }) if path == "app/pipe"), "{refused:?}");
    assert!(!dir.path().join("third.tar").exists());
}
