//! The demo image: the loadmatrix binary `FROM scratch`, with the shared
//! libraries it links, built through the Engine API (nothing is pulled, so it
//! works on engines without registry access).

use std::path::{Path, PathBuf};
use std::process::Command;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptionsBuilder, RemoveImageOptionsBuilder};
use futures_util::StreamExt;

use super::BackendError;
use super::engine::{connect_engine, message};

/// The tag `loadmatrix demo-image` builds by default.
pub(crate) const DEMO_IMAGE: &str = "loadmatrix-demo:latest";
/// The port the demo image's default command listens on.
pub(crate) const DEMO_PORT: u16 = 8080;
/// The tag of the load balancer image `loadmatrix demo-image` builds beside it.
pub(crate) const LB_IMAGE: &str = "loadmatrix-lb:latest";
/// Where the load balancer listens (the compose example publishes it).
pub(crate) const LB_PORT: u16 = 8023;
/// The load balancer's configuration: every replica of the compose
/// example's `inference` service, re-resolved when nginx is signalled.
const LB_CONF: &str = include_str!("../../examples/compose/nginx.conf");

/// Builds image `tag` FROM scratch with `binary` at /loadmatrix
/// (ENTRYPOINT ["/loadmatrix"], CMD the demo target on 0.0.0.0:8080) plus
/// every library ldd lists.
pub async fn build_demo_image(
    docker: &Docker,
    binary: &Path,
    tag: &str,
) -> Result<(), BackendError> {
    build_binary_image(docker, binary, tag, &[]).await
}

/// [`build_demo_image`] with extra Dockerfile instructions appended, e.g. a
/// `HEALTHCHECK`.
pub async fn build_binary_image(
    docker: &Docker,
    binary: &Path,
    tag: &str,
    extra: &[&str],
) -> Result<(), BackendError> {
    let fail = |message: String| BackendError::Build {
        tag: tag.to_string(),
        message,
    };
    let binary = binary.to_path_buf();
    let dockerfile = dockerfile(extra);
    let context =
        tokio::task::spawn_blocking(move || build_context(&binary, "loadmatrix", &[], &dockerfile))
            .await
            .map_err(|e| fail(format!("the build-context task failed: {e}")))?
            .map_err(fail)?;
    build_image(docker, tag, context).await
}

/// The distro's nginx `FROM scratch` with the libraries it links, a user to
/// run its workers as, and the compose example's configuration.
pub(crate) async fn build_lb_image(
    docker: &Docker,
    nginx: &Path,
    tag: &str,
) -> Result<(), BackendError> {
    let fail = |message: String| BackendError::Build {
        tag: tag.to_string(),
        message,
    };
    let nginx = nginx.to_path_buf();
    let dockerfile = format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         EXPOSE {LB_PORT}\n\
         LABEL loadmatrix.demo=\"1\"\n\
         STOPSIGNAL SIGQUIT\n\
         ENTRYPOINT [\"/usr/sbin/nginx\", \"-g\", \"daemon off;\"]\n\
         CMD [\"-c\", \"/etc/nginx/nginx.conf\"]\n"
    );
    let files: Vec<(&str, Vec<u8>, u32)> = vec![
        ("etc/nginx/nginx.conf", LB_CONF.as_bytes().to_vec(), 0o644),
        (
            "etc/passwd",
            b"root:x:0:0:root:/:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n".to_vec(),
            0o644,
        ),
        ("etc/group", b"root:x:0:\nnogroup:x:65534:\n".to_vec(), 0o644),
        ("tmp/", Vec::new(), 0o1777),
        ("var/log/nginx/", Vec::new(), 0o755),
        ("var/lib/nginx/", Vec::new(), 0o755),
    ];
    let context = tokio::task::spawn_blocking(move || {
        build_context(&nginx, "usr/sbin/nginx", &files, &dockerfile)
    })
    .await
    .map_err(|e| fail(format!("the build-context task failed: {e}")))?
    .map_err(fail)?;
    build_image(docker, tag, context).await
}

/// Builds `tag` from an in-memory build context, replacing the image it
/// superseded.
async fn build_image(docker: &Docker, tag: &str, context: Vec<u8>) -> Result<(), BackendError> {
    let fail = |message: String| BackendError::Build {
        tag: tag.to_string(),
        message,
    };
    let superseded = docker.inspect_image(tag).await.ok().and_then(|i| i.id);
    let options = BuildImageOptionsBuilder::new()
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut output = Vec::new();
    let mut stream =
        std::pin::pin!(docker.build_image(options, None, Some(bollard::body_full(context.into()))));
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    let text = detail.message.unwrap_or_default();
                    return Err(fail(format!("{text}\n{}", output.join(""))));
                }
                if let Some(line) = info.stream {
                    output.push(line);
                }
            }
            Err(e) => return Err(fail(format!("{}\n{}", message(&e), output.join("")))),
        }
    }
    let built = docker.inspect_image(tag).await.map_err(|e| {
        fail(format!(
            "the build ended without the image: {}",
            message(&e)
        ))
    })?;
    // Each rebuild of a changed binary would otherwise leave the previous
    // image behind untagged. Not forced: an image containers use stays.
    if let Some(old) = superseded
        && built.id.as_ref() != Some(&old)
    {
        let options = RemoveImageOptionsBuilder::new().build();
        let _ = docker.remove_image(&old, Some(options), None).await;
    }
    Ok(())
}

/// The distro's nginx, if installed.
fn find_nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// What `loadmatrix demo-image` runs: the demo image from this very binary,
/// and the load balancer image from the distro's nginx.
pub(crate) fn demo_image_command(tag: &str, lb_tag: &str) -> Result<(), BackendError> {
    let fail = |message: String| BackendError::Build {
        tag: tag.to_string(),
        message,
    };
    let exe = std::env::current_exe().map_err(|e| fail(format!("cannot find this binary: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let docker = connect_engine().await?;
        build_demo_image(&docker, &exe, tag).await?;
        println!("built {tag}");
        match find_nginx() {
            Some(nginx) => {
                build_lb_image(&docker, &nginx, lb_tag).await?;
                println!("built {lb_tag} (nginx load balancer on port {LB_PORT})");
            }
            None => eprintln!(
                "warning: did not build {lb_tag}: nginx is not installed (e.g. `apt-get install nginx-light`); \
                 the compose example's load balancer needs it"
            ),
        }
        Ok(())
    })
}

fn dockerfile(extra: &[&str]) -> String {
    let mut text = format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         EXPOSE {DEMO_PORT}\n\
         LABEL loadmatrix.demo=\"1\"\n\
         ENTRYPOINT [\"/loadmatrix\"]\n\
         CMD [\"demo-target\", \"--host\", \"0.0.0.0\", \"--port\", \"{DEMO_PORT}\"]\n"
    );
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The build context as an in-memory tar: the Dockerfile and `rootfs/`
/// with `binary` at `inside`, its libraries and `files` (a name ending in
/// `/` is a directory).
fn build_context(
    binary: &Path,
    inside: &str,
    files: &[(&str, Vec<u8>, u32)],
    dockerfile: &str,
) -> Result<Vec<u8>, String> {
    let libraries = shared_libraries(binary)?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &Path, data: &[u8], mode: u32| -> Result<(), String> {
        let mut header = tar::Header::new_gnu();
        if path.to_string_lossy().ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
        }
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        // A fixed mtime keeps the context identical between builds, so the
        // engine's layer cache applies.
        header.set_mtime(0);
        tar.append_data(&mut header, path, data)
            .map_err(|e| format!("cannot add {} to the build context: {e}", path.display()))
    };
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    add(&Path::new("rootfs").join(inside), &read(binary)?, 0o755)?;
    for (name, data, mode) in files {
        let path = format!("rootfs/{name}");
        add(Path::new(&path), data, *mode)?;
    }
    for lib in &libraries {
        let inside = Path::new("rootfs").join(lib.strip_prefix("/").unwrap_or(lib));
        // fs::read follows symlinks: the image gets the file under the
        // name the loader looks for.
        add(&inside, &read(lib)?, 0o755)?;
    }
    add(Path::new("Dockerfile"), dockerfile.as_bytes(), 0o644)?;
    tar.into_inner()
        .map_err(|e| format!("cannot finish the build context: {e}"))
}

/// Absolute paths of the shared libraries and loader `binary` needs.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd").arg(binary).output().map_err(|e| {
        format!(
            "cannot run `ldd` to find the libraries of {}: {e}",
            binary.display()
        )
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let all = format!("{stdout}{stderr}");
        if all.contains("not a dynamic executable") || all.contains("statically linked") {
            return Ok(Vec::new());
        }
        return Err(format!("`ldd {}` failed: {}", binary.display(), all.trim()));
    }
    parse_ldd(&stdout)
}

fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs: Vec<PathBuf> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("not found") {
            return Err(format!("a library is missing: {line}"));
        }
        let path = match line.split_once("=>") {
            Some((_, target)) => target.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        // The vDSO has no file; ld.so lines name the loader itself.
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            let p = PathBuf::from(p);
            if !libs.contains(&p) {
                libs.push(p);
            }
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f33)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f33)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f33)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
        assert!(
            parse_ldd("\tlinux-vdso.so.1 =>  (0x00007ffd)\n")
                .unwrap()
                .is_empty()
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn context_has_binary_libraries_and_dockerfile() {
        let exe = std::env::current_exe().unwrap();
        let tar =
            build_context(&exe, "loadmatrix", &[], &dockerfile(&["HEALTHCHECK NONE"])).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names.first().map(String::as_str), Some("rootfs/loadmatrix"));
        assert!(names.iter().any(|n| n.contains("libc.so")), "{names:?}");
        assert_eq!(names.last().map(String::as_str), Some("Dockerfile"));
    }
}
