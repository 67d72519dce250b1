//! The files that make up the image: its one layer, the OCI layout's index naming it, and the
//! OCI image archive, all written deterministically (same inputs, same bytes).

use std::fs;
use std::io::BufWriter;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, ensure};

use super::tar::TarWriter;
use super::{BIN_DIR, EMULATOR, IMAGE_NAME, MTIME, OPERATOR, VERSION};

/// The one layer: /usr/local/bin with both binaries, 0:0, mode 0755, fixed mtime.
pub fn write_layer(path: &Path, release: &Path) -> anyhow::Result<()> {
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut tar = TarWriter::new(BufWriter::new(file), MTIME);
    let mut dir = String::new();
    for part in BIN_DIR.split('/') {
        if !dir.is_empty() {
            dir.push('/');
        }
        dir.push_str(part);
        tar.dir(&dir, 0o755)?;
    }
    for binary in [OPERATOR, EMULATOR] {
        let source = release.join(binary);
        let mut file =
            fs::File::open(&source).with_context(|| format!("opening {}", source.display()))?;
        let size = file.metadata()?.len();
        tar.file(&format!("{BIN_DIR}/{binary}"), 0o755, size, &mut file)?;
    }
    tar.finish()?;
    Ok(())
}

/// Replaces the layout's index.json by one naming the image `IMAGE_NAME:VERSION`
/// (`docker load` and containerd read `io.containerd.image.name`, OCI tools the tag).
pub fn write_index(layout: &Path, digest: &str) -> anyhow::Result<()> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("unexpected digest {digest:?}"))?;
    let size = fs::metadata(layout.join("blobs/sha256").join(hex))
        .context("the manifest blob is missing from the saved layout")?
        .len();
    let index = format!(
        concat!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","#,
            r#""manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
            r#""digest":"{digest}","size":{size},"annotations":{{"#,
            r#""io.containerd.image.name":"{name}:{version}","#,
            r#""org.opencontainers.image.ref.name":"{version}"}}}}]}}"#,
            "\n"
        ),
        digest = digest,
        size = size,
        name = IMAGE_NAME,
        version = VERSION
    );
    fs::write(layout.join("index.json"), index).context("writing index.json")?;
    Ok(())
}

/// The OCI layout as one deterministic tar (an `oci-archive`), written atomically.
pub fn write_archive(layout: &Path, output: &Path) -> anyhow::Result<()> {
    if let Some(dir) = output.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let partial = output.with_extension("tar.partial");
    let file =
        fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut tar = TarWriter::new(BufWriter::new(file), MTIME);
    for name in ["oci-layout", "index.json"] {
        add_file(&mut tar, &layout.join(name), name)?;
    }
    tar.dir("blobs", 0o755)?;
    tar.dir("blobs/sha256", 0o755)?;
    let mut blobs: Vec<_> = fs::read_dir(layout.join("blobs/sha256"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    blobs.sort();
    for blob in blobs {
        let name = format!("blobs/sha256/{blob}");
        add_file(&mut tar, &layout.join(&name), &name)?;
    }
    tar.finish()?.into_inner()?.sync_all()?;
    fs::rename(&partial, output).with_context(|| format!("writing {}", output.display()))?;
    Ok(())
}

fn add_file(
    tar: &mut TarWriter<impl std::io::Write>,
    path: &Path,
    name: &str,
) -> anyhow::Result<()> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    tar.file(name, 0o644, size, &mut file)
}

/// Unpacks a filesystem tarball as root, keeping owners and modes.
pub fn unpack(tarball: &Path, into: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(into)?;
    let output = Command::new("tar")
        .args([
            "--extract",
            "--same-owner",
            "--same-permissions",
            "--numeric-owner",
            "--file",
        ])
        .arg(tarball)
        .arg("--directory")
        .arg(into)
        .output()
        .context("running tar")?;
    ensure!(
        output.status.success(),
        "unpacking {} failed: {}",
        tarball.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Total size of the files under `dir`.
pub fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_holds_the_bin_folder_and_both_binaries() {
        let dir = std::env::temp_dir().join(format!("xtask-image-layer-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for binary in [OPERATOR, EMULATOR] {
            fs::write(dir.join(binary), binary).unwrap();
        }
        let layer = dir.join("layer.tar");
        write_layer(&layer, &dir).unwrap();
        let first = fs::read(&layer).unwrap();
        write_layer(&layer, &dir).unwrap();
        assert_eq!(
            first,
            fs::read(&layer).unwrap(),
            "the layer is reproducible"
        );
        let listing = Command::new("tar")
            .args(["--list", "--verbose", "--numeric-owner", "--file"])
            .arg(&layer)
            .output()
            .unwrap();
        let listing = String::from_utf8(listing.stdout).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let entries: Vec<(&str, &str, &str)> = listing
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0], f[1], f[f.len() - 1])
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("drwxr-xr-x", "0/0", "usr/"),
                ("drwxr-xr-x", "0/0", "usr/local/"),
                ("drwxr-xr-x", "0/0", "usr/local/bin/"),
                ("-rwxr-xr-x", "0/0", "usr/local/bin/alicloud-db-operator"),
                ("-rwxr-xr-x", "0/0", "usr/local/bin/alicloud-emulator"),
            ]
        );
    }
}
