//! The benchmark's application: a deterministic tree of about 2,000 files
//! (~25 MB: mostly small text files in nested directories, a few binaries
//! of 1-2 MB), and the two follow-up commits the benchmark deploys.

use slipway_tests::{SampleRepo, repo::Change};

/// SplitMix64: a tiny seeded generator, so every run builds the same bytes.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "deploy", "release", "agent", "control", "plane", "symlink", "current", "object", "store",
    "manifest", "hash", "rollback", "host", "fleet", "stream", "event", "config", "render",
    "request", "handler", "router", "cache", "session", "user", "order", "invoice", "return",
    "let", "fn", "match", "impl", "self", "value", "index", "query", "table", "column", "view",
];

const EXTENSIONS: &[&str] = &["rb", "js", "css", "html", "txt", "py", "yml", "md"];

/// Text of exactly `size` bytes: lines of pseudo-words.
pub fn text(rng: &mut Prng, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64);
    while out.len() < size {
        let indent = rng.below(4) * 2;
        out.extend(std::iter::repeat_n(b' ', indent));
        for w in 0..(3 + rng.below(9)) {
            if w > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
        }
        out.push(b'\n');
    }
    out.truncate(size);
    if let Some(last) = out.last_mut() {
        *last = b'\n';
    }
    out
}

/// Incompressible bytes.
pub fn binary(rng: &mut Prng, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(size);
    out
}

/// A text file size between 1 and 20 KiB, skewed towards small files.
fn text_size(rng: &mut Prng) -> usize {
    1024 + (19.0 * 1024.0 * rng.unit().powf(2.5)) as usize
}

/// Files of a commit: path and content.
pub type Files = Vec<(String, Vec<u8>)>;

/// What the benchmark commits.
pub struct Plan {
    /// Commit 1: the whole tree.
    pub initial: Files,
    /// Commit 2: one small file changed.
    pub one_file: Files,
    /// Commit 3: 20 files added and 5 changed.
    pub twenty_five: Files,
}

/// Number of small text files and of binaries in commit 1.
pub const TEXT_FILES: usize = 1_990;
pub const BINARY_FILES: usize = 10;

impl Plan {
    pub fn generate(seed: u64) -> Self {
        let mut rng = Prng::new(seed);
        let mut initial = Vec::with_capacity(TEXT_FILES + BINARY_FILES);
        for i in 0..TEXT_FILES {
            // 20 top-level modules x 10 sub-directories: ~10 files per dir.
            let ext = EXTENSIONS[i % EXTENSIONS.len()];
            let path = format!(
                "app/mod{:02}/part{}/file{i:04}.{ext}",
                i % 20,
                (i / 20) % 10
            );
            let size = text_size(&mut rng);
            initial.push((path, text(&mut rng, size)));
        }
        for i in 0..BINARY_FILES {
            let size = (1 << 20) + i * (1 << 20) / 16; // 1 MiB .. 1.6 MiB
            initial.push((
                format!("public/assets/blob{i:02}.bin"),
                binary(&mut rng, size),
            ));
        }

        // Commit 2: one line appended to one small file (so its size changes,
        // which keeps rsync's size+mtime quick check honest).
        let victim = initial
            .iter()
            .find(|(p, c)| p.ends_with(".rb") && (3_000..5_000).contains(&c.len()))
            .expect("a small .rb file")
            .clone();
        let mut changed = victim.1.clone();
        changed.extend_from_slice(b"changed in commit 2\n");
        let one_file = vec![(victim.0, changed)];

        // Commit 3: 20 new files (some in new directories) and 5 changed.
        let mut twenty_five = Vec::new();
        for i in 0..20 {
            let path = if i % 2 == 0 {
                format!("app/mod{:02}/part0/added{i:02}.rb", i % 20)
            } else {
                format!("app/feature/new{:02}/added{i:02}.js", i % 4)
            };
            let size = text_size(&mut rng);
            twenty_five.push((path, text(&mut rng, size)));
        }
        for k in 0..5 {
            let (path, content) = &initial[100 + k * 331];
            let mut content = content.clone();
            let extra = 64 + rng.below(512);
            content.extend_from_slice(&text(&mut rng, extra));
            twenty_five.push((path.clone(), content));
        }
        Self {
            initial,
            one_file,
            twenty_five,
        }
    }
}

/// Total bytes of a set of files.
pub fn total_bytes(files: &[(String, Vec<u8>)]) -> u64 {
    files.iter().map(|(_, c)| c.len() as u64).sum()
}

/// Commits `files` on `main` (written into the work tree too, the way a
/// `git pull` updates a checkout: only these paths are touched).
pub fn commit(repo: &SampleRepo, message: &str, files: &[(String, Vec<u8>)]) -> String {
    let changes: Vec<Change<'_>> = files
        .iter()
        .map(|(p, c)| Change::File(p.as_str(), c.as_slice()))
        .collect();
    repo.commit(message, &changes)
}
