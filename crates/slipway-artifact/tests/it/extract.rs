//! Safe extraction: crafted hostile bundles are refused, each with an error naming the
//! entry, before anything is written.

use std::path::Path;

use slipway_artifact::{ArtifactError, ArtifactId, ExtractLimits, MANIFEST_NAME, extract};

/// One raw tar entry; names and link targets are written into the header bytes directly
/// so that the tar crate's own path checks cannot clean them up.
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    link: &'a str,
    data: &'a [u8],
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: tar::EntryType::Regular,
        link: "",
        data,
    }
}

fn link<'a>(name: &'a str, kind: tar::EntryType, target: &'a str) -> Raw<'a> {
    Raw {
        name,
        kind,
        link: target,
        data: b"",
    }
}

/// A compressed bundle of a minimal manifest followed by `entries`.
fn hostile(entries: &[Raw<'_>]) -> (Vec<u8>, ArtifactId) {
    let manifest = br#"{"files":[],"module_dirs":[],"schema_version":1,"slipway_version":"0.1.0","stack":"x","stack_dir":"x"}"#;
    let mut builder = tar::Builder::new(Vec::new());
    for raw in std::iter::once(&file(MANIFEST_NAME, manifest)).chain(entries) {
        let mut header = tar::Header::new_gnu();
        let gnu = header.as_gnu_mut().expect("gnu header");
        gnu.name[..raw.name.len()].copy_from_slice(raw.name.as_bytes());
        gnu.linkname[..raw.link.len()].copy_from_slice(raw.link.as_bytes());
        header.set_entry_type(raw.kind);
        header.set_mode(0o644);
        header.set_size(raw.data.len() as u64);
        header.set_cksum();
        builder.append(&header, raw.data).expect("append");
    }
    let tar = builder.into_inner().expect("tar");
    let bytes = zstd::stream::encode_all(tar.as_slice(), 3).expect("zstd");
    let id = ArtifactId::of(&bytes);
    (bytes, id)
}

fn refused(entries: &[Raw<'_>], limits: &ExtractLimits) -> (ArtifactError, tempfile::TempDir) {
    let (bytes, id) = hostile(entries);
    let dest = tempfile::tempdir().expect("temp dir");
    let err = extract(&bytes, &id, &dest.path().join("wc"), limits).expect_err("must be refused");
    (err, dest)
}

fn nothing_written(dest: &Path) {
    assert!(
        !dest.join("wc").exists(),
        "the working copy was created before refusing"
    );
}

#[test]
fn a_parent_component_is_refused() {
    let (err, dest) = refused(&[file("a/../../evil.tf", b"x")], &ExtractLimits::default());
    nothing_written(dest.path());
    insta::assert_snapshot!(err.to_string(), @"bundle entry `a/../../evil.tf` contains a `..` component; refusing to extract");
}

#[test]
fn an_absolute_path_is_refused() {
    let (err, dest) = refused(&[file("/etc/evil.tf", b"x")], &ExtractLimits::default());
    nothing_written(dest.path());
    insta::assert_snapshot!(err.to_string(), @"bundle entry `/etc/evil.tf` has an absolute path; refusing to extract");
}

#[test]
fn a_symlink_escaping_the_working_copy_is_refused() {
    let (err, dest) = refused(
        &[link(
            "stacks/x/up",
            tar::EntryType::Symlink,
            "../../../outside",
        )],
        &ExtractLimits::default(),
    );
    nothing_written(dest.path());
    insta::assert_snapshot!(err.to_string(), @"bundle entry `stacks/x/up` is a symbolic link to `../../../outside`, outside the working copy; refusing to extract");
}

#[test]
fn an_absolute_symlink_is_refused() {
    let (err, _dest) = refused(
        &[link("etc", tar::EntryType::Symlink, "/etc")],
        &ExtractLimits::default(),
    );
    insta::assert_snapshot!(err.to_string(), @"bundle entry `etc` is a symbolic link to `/etc`, outside the working copy; refusing to extract");
}

#[test]
fn a_symlink_detour_through_another_link_is_refused() {
    // `a/l -> ..` is inside; `a/m -> l/..` looks inside lexically but really climbs out.
    let (err, _dest) = refused(
        &[
            link("a/l", tar::EntryType::Symlink, ".."),
            link("a/m", tar::EntryType::Symlink, "l/.."),
        ],
        &ExtractLimits::default(),
    );
    assert!(
        matches!(err, ArtifactError::LinkEscapes { ref entry, .. } if entry == "a/m"),
        "{err}"
    );
}

#[test]
fn a_hardlink_escaping_the_working_copy_is_refused() {
    let (err, dest) = refused(
        &[link("passwd", tar::EntryType::Link, "../../etc/passwd")],
        &ExtractLimits::default(),
    );
    nothing_written(dest.path());
    insta::assert_snapshot!(err.to_string(), @"bundle entry `passwd` is a hard link to `../../etc/passwd`, outside the working copy; refusing to extract");
}

#[test]
fn a_hardlink_to_an_absolute_path_is_refused() {
    let (err, _dest) = refused(
        &[link("passwd", tar::EntryType::Link, "/etc/passwd")],
        &ExtractLimits::default(),
    );
    assert!(matches!(err, ArtifactError::LinkEscapes { .. }), "{err}");
}

#[test]
fn device_files_and_fifos_are_refused() {
    let mut messages = Vec::new();
    for kind in [
        tar::EntryType::Char,
        tar::EntryType::Block,
        tar::EntryType::Fifo,
    ] {
        let (err, dest) = refused(&[link("dev", kind, "")], &ExtractLimits::default());
        nothing_written(dest.path());
        messages.push(err.to_string());
    }
    insta::assert_snapshot!(messages.join("\n"), @r"
    bundle entry `dev` is a character device, which a bundle never contains; refusing to extract
    bundle entry `dev` is a block device, which a bundle never contains; refusing to extract
    bundle entry `dev` is a fifo, which a bundle never contains; refusing to extract
    ");
}

#[test]
fn a_bundle_over_the_size_limit_is_refused() {
    let big = vec![b'x'; 4096];
    let limits = ExtractLimits {
        max_total_bytes: 6000,
        ..ExtractLimits::default()
    };
    let (err, dest) = refused(&[file("a.tf", &big), file("b.tf", &big)], &limits);
    nothing_written(dest.path());
    insta::assert_snapshot!(err.to_string(), @"bundle is larger than the 6000-byte unpack limit (at entry `b.tf`); refusing to extract");
}

#[test]
fn a_bundle_with_too_many_entries_is_refused() {
    let limits = ExtractLimits {
        max_entries: 2,
        ..ExtractLimits::default()
    };
    let (err, _dest) = refused(&[file("a.tf", b"a"), file("b.tf", b"b")], &limits);
    insta::assert_snapshot!(err.to_string(), @"bundle has more than 2 entries; refusing to extract");
}

#[test]
fn a_huge_long_name_is_cut_off_while_decompressing() {
    // A GNU long-name entry is read into memory whole by tar readers; 64 MiB of name
    // compresses to almost nothing. The decompressed stream is capped instead of trusted.
    let name = vec![b'a'; 64 * 1024 * 1024];
    let limits = ExtractLimits {
        max_total_bytes: 1024,
        max_entries: 4,
    };
    let (err, dest) = refused(
        &[
            Raw {
                name: "././@LongLink",
                kind: tar::EntryType::GNULongName,
                link: "",
                data: &name,
            },
            file("a.tf", b"x"),
        ],
        &limits,
    );
    nothing_written(dest.path());
    assert!(matches!(err, ArtifactError::TooLarge { .. }), "{err}");
}

#[test]
fn duplicate_entries_are_refused() {
    let (err, _dest) = refused(
        &[file("a.tf", b"a"), file("a.tf", b"b")],
        &ExtractLimits::default(),
    );
    insta::assert_snapshot!(err.to_string(), @"bundle entry `a.tf` would overwrite an existing file; refusing to extract");
}

#[test]
fn nothing_is_written_through_a_symlink_made_by_an_earlier_entry() {
    // `sub -> .` stays inside, but a later `sub/x.tf` must not be written through it.
    let (bytes, id) = hostile(&[
        link("sub", tar::EntryType::Symlink, "."),
        file("sub/x.tf", b"x"),
    ]);
    let dest = tempfile::tempdir().expect("temp dir");
    let err = extract(&bytes, &id, dest.path(), &ExtractLimits::default()).expect_err("refused");
    insta::assert_snapshot!(err.to_string(), @"bundle entry `sub/x.tf` would be written through the symbolic link `sub`; refusing to extract");
    assert!(!dest.path().join("x.tf").exists());
}

#[test]
fn a_file_over_an_existing_symlink_is_not_followed() {
    let outside = tempfile::tempdir().expect("temp dir");
    let dest = tempfile::tempdir().expect("temp dir");
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "safe").expect("write");
    std::os::unix::fs::symlink(&victim, dest.path().join("a.tf")).expect("symlink");
    let (bytes, id) = hostile(&[file("a.tf", b"overwritten")]);
    let err = extract(&bytes, &id, dest.path(), &ExtractLimits::default()).expect_err("refused");
    assert!(matches!(err, ArtifactError::AlreadyExists { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "safe");
}

#[test]
fn links_inside_the_working_copy_are_kept() {
    let (bytes, id) = hostile(&[
        file("modules/vpc/main.tf", b"# vpc"),
        link(
            "stacks/x/vpc.tf",
            tar::EntryType::Symlink,
            "../../modules/vpc/main.tf",
        ),
        link(
            "stacks/x/copy.tf",
            tar::EntryType::Link,
            "modules/vpc/main.tf",
        ),
    ]);
    let dest = tempfile::tempdir().expect("temp dir");
    extract(&bytes, &id, dest.path(), &ExtractLimits::default()).expect("extracts");
    for path in ["stacks/x/vpc.tf", "stacks/x/copy.tf"] {
        assert_eq!(
            std::fs::read(dest.path().join(path)).expect("read"),
            b"# vpc"
        );
    }
}

#[test]
fn tampered_bytes_are_refused_before_anything_else() {
    let (mut bytes, id) = hostile(&[file("a.tf", b"a")]);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let dest = tempfile::tempdir().expect("temp dir");
    let err = extract(
        &bytes,
        &id,
        &dest.path().join("wc"),
        &ExtractLimits::default(),
    )
    .expect_err("tampered");
    let ArtifactError::Tampered {
        id: expected,
        actual,
    } = &err
    else {
        panic!("expected Tampered, got {err}");
    };
    assert_eq!(expected, &id);
    assert_eq!(actual, &ArtifactId::of(&bytes));
    nothing_written(dest.path());
}

#[test]
fn a_bundle_without_a_manifest_first_is_refused() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, "a.tf", &b"a"[..])
        .expect("append");
    let tar = builder.into_inner().expect("tar");
    let bytes = zstd::stream::encode_all(tar.as_slice(), 3).expect("zstd");
    let id = ArtifactId::of(&bytes);
    let dest = tempfile::tempdir().expect("temp dir");
    let err = extract(&bytes, &id, dest.path(), &ExtractLimits::default()).expect_err("refused");
    insta::assert_snapshot!(err.to_string(), @"bundle has no slipway-manifest.json as its first entry");
}
