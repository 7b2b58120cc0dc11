//! One long-lived `git cat-file --batch` process: every file slipway reads at a commit goes
//! through it, so reading thousands of files costs one process, not thousands.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use crate::error::GitError;
use crate::repo::Repo;

pub(crate) struct CatFile {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl CatFile {
    pub(crate) fn start(repo: &Repo) -> Result<Self, GitError> {
        let mut child = repo
            .command()
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| GitError::Spawn { source })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(GitError::Batch {
                source: std::io::Error::other("no pipes to git cat-file"),
            });
        };
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::with_capacity(1 << 16, stdout),
        })
    }

    /// The contents of each `commit:path`, in order; `None` for a path that is missing, not
    /// a file, or not UTF-8 text.
    pub(crate) fn read(
        &mut self,
        commit: &str,
        paths: &[String],
    ) -> Result<Vec<Option<String>>, GitError> {
        let names: Vec<String> = paths.iter().map(|p| format!("{commit}:{p}")).collect();
        self.read_objects(&names)
    }

    /// The contents of each object `names` names (an object id, or `commit:path`), in order;
    /// `None` for one that is missing, not a blob, or not UTF-8 text.
    ///
    /// Naming blobs by id is much cheaper for git than `commit:path`, which walks the
    /// commit's trees from the top for every path.
    pub(crate) fn read_objects(
        &mut self,
        names: &[String],
    ) -> Result<Vec<Option<String>>, GitError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(GitError::Batch {
                source: std::io::Error::other("git cat-file has already stopped"),
            });
        };
        let stdout = &mut self.stdout;
        // Requests are written from a second thread while answers are read here: with both
        // sides in one thread, a large batch fills the pipes and the two processes wait on
        // each other for ever.
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> std::io::Result<()> {
                let mut out = BufWriter::with_capacity(1 << 16, stdin);
                for name in names {
                    // cat-file reads one object name per line; a name with a line break
                    // cannot be asked for and is answered as missing below.
                    if name.contains('\n') {
                        continue;
                    }
                    writeln!(out, "{name}")?;
                }
                out.flush()
            });
            let mut contents = Vec::with_capacity(names.len());
            let mut header = Vec::new();
            for name in names {
                if name.contains('\n') {
                    contents.push(None);
                    continue;
                }
                header.clear();
                let read = stdout.read_until(b'\n', &mut header);
                if read.map_err(|source| GitError::Batch { source })? == 0 {
                    return Err(GitError::Batch {
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "git cat-file stopped answering",
                        ),
                    });
                }
                contents.push(read_answer(stdout, &header)?);
            }
            match writer.join() {
                Ok(result) => result.map_err(|source| GitError::Batch { source })?,
                Err(_) => {
                    return Err(GitError::Batch {
                        source: std::io::Error::other("the request writer stopped"),
                    });
                }
            }
            Ok(contents)
        })
    }
}

/// Reads one answer after its header line: `<oid> <type> <size>` then the contents and a line
/// break, or `<name> missing` (or `ambiguous`) alone.
fn read_answer(
    stdout: &mut BufReader<ChildStdout>,
    header: &[u8],
) -> Result<Option<String>, GitError> {
    let line = String::from_utf8_lossy(header);
    let fields: Vec<&str> = line.trim_end().rsplitn(3, ' ').collect();
    // rsplitn yields from the end: size, type, oid; a missing object ends in "missing".
    let [size, kind, _oid] = fields[..] else {
        return Ok(None);
    };
    let Ok(size) = size.parse::<usize>() else {
        return Ok(None);
    };
    let mut body = vec![0; size + 1];
    stdout
        .read_exact(&mut body)
        .map_err(|source| GitError::Batch { source })?;
    body.pop();
    if kind != "blob" {
        return Ok(None);
    }
    Ok(String::from_utf8(body).ok())
}

impl Drop for CatFile {
    fn drop(&mut self) {
        // Closing its input ends cat-file; waiting reaps it so no zombie is left behind.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
