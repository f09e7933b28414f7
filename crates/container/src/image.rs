//! Reading an image archive: an OCI layout (`oci-layout`, `index.json`, `blobs/sha256/`)
//! or a docker-archive (`manifest.json`, a config and a tar per layer), both as one tar
//! file. Only the small documents are read into memory; layers stay in the archive and
//! are read from it by position when they are unpacked.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::{ImageError, io_at};

/// The most a document of the image (an index, a manifest, a config) may take.
const MAX_DOCUMENT: u64 = 4 << 20;
/// The most files an image archive may hold (its documents and layers, and a few more).
const MAX_MEMBERS: usize = 4096;
/// The most layers an image may have (OCI tools stop at 127).
const MAX_LAYERS: usize = 128;

/// What the image says to run, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// The command's first words.
    pub entrypoint: Vec<String>,
    /// Its default arguments.
    pub cmd: Vec<String>,
    /// `NAME=value` pairs.
    pub env: Vec<String>,
    /// Where the command starts, if the image says.
    pub working_dir: Option<String>,
}

/// A layer: the digest its bytes must have, and where they lie in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The digest of the layer's bytes as stored (compressed or not).
    pub digest: Digest,
    offset: u64,
    size: u64,
}

/// An image archive, read: its config and its layers, bottom first.
#[derive(Debug)]
pub struct Image {
    archive: PathBuf,
    /// What it runs.
    pub config: ImageConfig,
    /// Its layers, bottom first.
    pub layers: Vec<Layer>,
}

/// A regular file of the archive: where its bytes start, and how many.
#[derive(Debug, Clone, Copy)]
struct Member {
    offset: u64,
    size: u64,
}

impl Image {
    /// Reads the archive at `path`: the index or manifest, the config, and where each
    /// layer lies, checking the digest of every document it names by digest.
    pub fn read(path: &Path) -> Result<Image, ImageError> {
        let archive = Archive::index(path)?;
        let (config, layers) = if archive.members.contains_key("index.json") {
            archive.oci()?
        } else if archive.members.contains_key("manifest.json") {
            archive.docker()?
        } else {
            return Err(ImageError::NotAnImage);
        };
        if layers.len() > MAX_LAYERS {
            return Err(malformed("the manifest", format!("{} layers; at most {MAX_LAYERS}", layers.len())));
        }
        Ok(Image { archive: path.to_path_buf(), config, layers })
    }

    /// The bytes of `layer` as stored in the archive.
    pub fn layer_bytes(&self, layer: &Layer) -> Result<impl Read + use<>, ImageError> {
        let mut file = File::open(&self.archive).map_err(io_at(&self.archive))?;
        file.seek(SeekFrom::Start(layer.offset)).map_err(io_at(&self.archive))?;
        Ok(file.take(layer.size))
    }
}

fn malformed(what: &str, why: impl ToString) -> ImageError {
    ImageError::Malformed { what: what.to_string(), why: why.to_string() }
}

/// The archive's regular files by path (without a leading `./`).
struct Archive {
    path: PathBuf,
    members: BTreeMap<String, Member>,
}

impl Archive {
    fn index(path: &Path) -> Result<Archive, ImageError> {
        let file = File::open(path).map_err(io_at(path))?;
        let mut archive = tar::Archive::new(file);
        let mut members = BTreeMap::new();
        let not_a_tar = |error: std::io::Error| malformed("the archive", format!("not a tar file: {error}"));
        for entry in archive.entries().map_err(not_a_tar)? {
            let entry = entry.map_err(not_a_tar)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).trim_start_matches("./").to_string();
            let member = Member { offset: entry.raw_file_position(), size: entry.size() };
            members.insert(name, member);
            if members.len() > MAX_MEMBERS {
                return Err(malformed("the archive", format!("more than {MAX_MEMBERS} files")));
            }
        }
        Ok(Archive { path: path.to_path_buf(), members })
    }

    fn member(&self, name: &str) -> Result<Member, ImageError> {
        self.members.get(name).copied().ok_or_else(|| ImageError::Missing(name.to_string()))
    }

    /// A small document of the archive, whole.
    fn read(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let member = self.member(name)?;
        if member.size > MAX_DOCUMENT {
            return Err(malformed(
                name,
                format!("{} bytes; a document of an image takes at most {MAX_DOCUMENT}", member.size),
            ));
        }
        let mut file = File::open(&self.path).map_err(io_at(&self.path))?;
        file.seek(SeekFrom::Start(member.offset)).map_err(io_at(&self.path))?;
        let mut bytes = Vec::with_capacity(member.size as usize);
        file.take(member.size).read_to_end(&mut bytes).map_err(io_at(&self.path))?;
        Ok(bytes)
    }

    /// The blob named `digest` in an OCI layout, checked against it.
    fn blob(&self, digest: &Digest, what: &str) -> Result<Vec<u8>, ImageError> {
        let bytes = self.read(&blob_path(digest))?;
        let got = Digest::of(&bytes);
        if got != *digest {
            return Err(ImageError::DigestMismatch { what: what.to_string(), want: *digest, got });
        }
        Ok(bytes)
    }

    fn oci(&self) -> Result<(ImageConfig, Vec<Layer>), ImageError> {
        let index: Index = parse("index.json", &self.read("index.json")?)?;
        let mut descriptor = pick(&index.manifests, "index.json")?.clone();
        // An index may point at another index (one per platform set); follow it once.
        if descriptor.media_type.as_deref() == Some(INDEX_TYPE) {
            let nested = self.blob(&digest_of(&descriptor, "the index")?, "the nested index")?;
            let nested: Index = parse("the nested index", &nested)?;
            descriptor = pick(&nested.manifests, "the nested index")?.clone();
        }
        let manifest: Manifest =
            parse("the manifest", &self.blob(&digest_of(&descriptor, "the index")?, "the manifest")?)?;
        let config = config_of(&self.blob(&digest_of(&manifest.config, "the manifest")?, "the config")?)?;
        let layers = manifest
            .layers
            .iter()
            .map(|layer| {
                let digest = digest_of(layer, "the manifest")?;
                let member = self.member(&blob_path(&digest))?;
                Ok(Layer { digest, offset: member.offset, size: member.size })
            })
            .collect::<Result<_, ImageError>>()?;
        Ok((config, layers))
    }

    fn docker(&self) -> Result<(ImageConfig, Vec<Layer>), ImageError> {
        let manifests: Vec<DockerManifest> = parse("manifest.json", &self.read("manifest.json")?)?;
        let [manifest] = &manifests[..] else {
            return Err(malformed("manifest.json", format!("{} images; a task's archive holds one", manifests.len())));
        };
        let config_bytes = self.read(&manifest.config)?;
        // The config is named by its digest, as `<hex>.json` or `blobs/sha256/<hex>`.
        if let Some(want) = named_digest(&manifest.config) {
            let got = Digest::of(&config_bytes);
            if got != want {
                return Err(ImageError::DigestMismatch { what: "the config".into(), want, got });
            }
        }
        let config = config_of(&config_bytes)?;
        let diff_ids: RootFs =
            serde_json::from_slice::<DockerConfig>(&config_bytes).map_err(|e| malformed("the config", e))?.rootfs;
        if diff_ids.diff_ids.len() != manifest.layers.len() {
            let why = format!("{} layers, {} diff_ids in its config", manifest.layers.len(), diff_ids.diff_ids.len());
            return Err(malformed("manifest.json", why));
        }
        let layers = manifest
            .layers
            .iter()
            .zip(&diff_ids.diff_ids)
            .map(|(path, diff_id)| {
                // A docker-archive's layers are uncompressed: their digest is the diff id,
                // unless the layer is a blob named by its own digest.
                let digest = match named_digest(path) {
                    Some(digest) => digest,
                    None => {
                        Digest::parse(diff_id).ok_or_else(|| malformed("the config", format!("diff id {diff_id:?}")))?
                    }
                };
                let member = self.member(path)?;
                Ok(Layer { digest, offset: member.offset, size: member.size })
            })
            .collect::<Result<_, ImageError>>()?;
        Ok((config, layers))
    }
}

const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// The digest a docker-archive path names: `blobs/sha256/<hex>` or `<hex>.json`.
fn named_digest(path: &str) -> Option<Digest> {
    let name = path.strip_prefix("blobs/sha256/").or_else(|| path.strip_suffix(".json"))?;
    Digest::from_hex(name)
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| malformed(what, e))
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    platform: Option<Value>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct DockerConfig {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

/// The manifest for linux/amd64 when the index says which is which, otherwise the first.
fn pick<'a>(manifests: &'a [Descriptor], what: &str) -> Result<&'a Descriptor, ImageError> {
    let linux_amd64 =
        |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| p["os"] == "linux" && p["architecture"] == "amd64");
    manifests
        .iter()
        .find(linux_amd64)
        .or_else(|| manifests.first())
        .ok_or_else(|| malformed(what, "it lists no manifest"))
}

fn digest_of(descriptor: &Descriptor, what: &str) -> Result<Digest, ImageError> {
    Digest::parse(&descriptor.digest)
        .ok_or_else(|| malformed(what, format!("digest {:?} is not sha256 and 64 hex digits", descriptor.digest)))
}

/// The run settings of an image config (`config.Entrypoint`, `Cmd`, `Env`, `WorkingDir`).
fn config_of(bytes: &[u8]) -> Result<ImageConfig, ImageError> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct Run {
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
        env: Option<Vec<String>>,
        working_dir: Option<String>,
    }
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        config: Option<Run>,
    }
    let run = parse::<Config>("the config", bytes)?.config.unwrap_or_default();
    Ok(ImageConfig {
        entrypoint: run.entrypoint.unwrap_or_default(),
        cmd: run.cmd.unwrap_or_default(),
        env: run.env.unwrap_or_default(),
        working_dir: run.working_dir.filter(|dir| !dir.is_empty()),
    })
}
