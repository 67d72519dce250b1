//! Throw-away PKI for one control plane: a CA, the serving certificate, an admin client
//! certificate in `system:masters` and the service-account signing key. Made with `openssl`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Files of the PKI.
pub struct Pki {
    pub ca_crt: PathBuf,
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
    pub admin_crt: PathBuf,
    pub admin_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

/// Writes the PKI into `dir`.
pub fn generate(dir: &Path) -> Result<Pki, Error> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Start(format!("create {}: {e}", dir.display())))?;
    std::fs::write(
        dir.join("srv.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .map_err(|e| Error::Start(e.to_string()))?;
    std::fs::write(
        dir.join("cli.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )
    .map_err(|e| Error::Start(e.to_string()))?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "7",
            "-subj",
            "/CN=alicloud-testenv-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ],
    )?;
    issue(dir, "apiserver", "/CN=kube-apiserver", "srv.ext")?;
    issue(
        dir,
        "admin",
        "/O=system:masters/CN=testenv-admin",
        "cli.ext",
    )?;
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "sa.key",
        ],
    )?;
    openssl(dir, &["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(Pki {
        ca_crt: dir.join("ca.crt"),
        server_crt: dir.join("apiserver.crt"),
        server_key: dir.join("apiserver.key"),
        admin_crt: dir.join("admin.crt"),
        admin_key: dir.join("admin.key"),
        sa_key: dir.join("sa.key"),
        sa_pub: dir.join("sa.pub"),
    })
}

/// `<name>.key` and `<name>.crt` for `subject`, signed by the CA with the extensions in `ext`.
fn issue(dir: &Path, name: &str, subject: &str, ext: &str) -> Result<(), Error> {
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "7",
            "-extfile",
            ext,
            "-out",
            &crt,
        ],
    )
}

/// Runs `openssl` with `args` in `dir`; its stderr in the error.
fn openssl(dir: &Path, args: &[&str]) -> Result<(), Error> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| Error::Start(format!("run openssl (install the openssl package): {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Start(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
