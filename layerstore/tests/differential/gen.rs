//! Random layer stacks: files, directories, symlinks (absolute, relative, dangling),
//! hardlinks (within a layer and to lower layers), whiteouts and opaque markers in any
//! order, metadata changes, type changes, implied parents and names that need the GNU or
//! PAX long forms, from a seed.

/// A small, fast, reproducible generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Owner, mode, mtime and xattrs of an entry.
#[derive(Debug, Clone)]
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
    Fifo,
    Char(u32, u32),
    /// `.wh.NAME` for `path`.
    Whiteout,
    /// `path/.wh..wh..opq`.
    Opaque,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub meta: Meta,
    /// Write a long name as a PAX `path` record rather than a GNU long-name entry.
    pub pax_name: bool,
}

const LONG: &str =
    "a-name-long-enough-that-a-path-holding-it-needs-the-gnu-or-pax-long-name-form-of-tar-x";

fn names() -> Vec<&'static str> {
    vec!["a", "b", "c", "lib", "usr", "tmp", "sp ace", "é", LONG]
}

fn path(rng: &mut Rng) -> String {
    let pool = names();
    let depth = 1 + rng.below(3);
    let mut parts = Vec::new();
    for _ in 0..depth {
        parts.push(*rng.pick(&pool));
    }
    parts.join("/")
}

fn meta(rng: &mut Rng, dir: bool) -> Meta {
    let mode = if dir {
        *rng.pick(&[0o755, 0o755, 0o700, 0o1777, 0o2775, 0o750])
    } else {
        *rng.pick(&[0o644, 0o644, 0o755, 0o600, 0o4755, 0o2755, 0o444])
    };
    let owners = [0u64, 0, 1000, 65534];
    let mut xattrs = Vec::new();
    if rng.chance(15) {
        let value: Vec<u8> = match rng.below(3) {
            0 => b"plain".to_vec(),
            1 => vec![0, 1, 2, 0xff, 0, 7],
            _ => b"ends-in-nul\0".to_vec(),
        };
        xattrs.push((format!("user.k{}", rng.below(3)), value));
    }
    Meta {
        mode,
        uid: *rng.pick(&owners),
        gid: *rng.pick(&owners),
        mtime: 1_000_000_000 + rng.below(600_000_000) as u64,
        xattrs,
    }
}

/// What the generator believes is at a path so far (it only steers generation towards
/// valid stacks; the tools decide what is right).
#[derive(Clone, PartialEq)]
enum Was {
    Dir,
    File,
    Link,
    Other,
}

fn ancestors(p: &str) -> Vec<String> {
    let parts: Vec<&str> = p.split('/').collect();
    (1..parts.len()).map(|i| parts[..i].join("/")).collect()
}

fn forget_below(model: &mut std::collections::BTreeMap<String, Was>, p: &str) {
    let prefix = format!("{p}/");
    model.retain(|k, _| !k.starts_with(&prefix));
}

/// A stack of 1 to 5 layers, bottom first.
pub fn stack(seed: u64) -> Vec<Vec<Entry>> {
    let mut rng = Rng::new(seed);
    let layers = 1 + rng.below(5);
    let mut model: std::collections::BTreeMap<String, Was> = Default::default();
    let mut out = Vec::new();
    for _ in 0..layers {
        let mut layer = Vec::new();
        for _ in 0..(2 + rng.below(10)) {
            let p = path(&mut rng);
            // Parents: where one is not a directory (a file, or mostly a symlink), the
            // layer turns it into one (a type change); else an explicit entry only
            // sometimes, the rest implied.
            for a in ancestors(&p) {
                let replace = match model.get(&a) {
                    Some(Was::Dir) => false,
                    Some(Was::Link) => rng.chance(70),
                    Some(_) => true,
                    None => false,
                };
                if replace || rng.chance(25) {
                    layer.push(Entry {
                        path: a.clone(),
                        kind: Kind::Dir,
                        meta: meta(&mut rng, true),
                        pax_name: rng.chance(50),
                    });
                    model.insert(a.clone(), Was::Dir);
                } else if model.get(&a) != Some(&Was::Link) {
                    model.insert(a.clone(), Was::Dir);
                }
            }
            let files: Vec<String> = model
                .iter()
                .filter(|(k, w)| **w == Was::File && **k != p && !p.starts_with(&format!("{k}/")))
                .map(|(k, _)| k.clone())
                .collect();
            let kind = match rng.below(100) {
                0..=29 => Kind::File(format!("{p} @{}\n", rng.below(1000)).into_bytes()),
                30..=44 => Kind::Dir,
                45..=56 => {
                    let t = path(&mut rng);
                    Kind::Symlink(match rng.below(3) {
                        0 => format!("/{t}"),
                        1 => t,
                        _ => format!("../{t}"),
                    })
                }
                57..=64 if !files.is_empty() => Kind::Hardlink(rng.pick(&files).clone()),
                65..=79 => Kind::Whiteout,
                80..=87 => Kind::Opaque,
                88..=90 => Kind::Fifo,
                91..=92 => Kind::Char(1, 3),
                _ => Kind::File(b"x".to_vec()),
            };
            match &kind {
                Kind::File(_) | Kind::Hardlink(_) => {
                    forget_below(&mut model, &p);
                    model.insert(p.clone(), Was::File);
                }
                Kind::Dir => {
                    model.insert(p.clone(), Was::Dir);
                }
                Kind::Symlink(_) => {
                    forget_below(&mut model, &p);
                    model.insert(p.clone(), Was::Link);
                }
                Kind::Fifo | Kind::Char(..) => {
                    forget_below(&mut model, &p);
                    model.insert(p.clone(), Was::Other);
                }
                Kind::Whiteout => {
                    forget_below(&mut model, &p);
                    model.remove(&p);
                }
                Kind::Opaque => forget_below(&mut model, &p),
            }
            let is_dir = matches!(kind, Kind::Dir);
            let mut m = meta(&mut rng, is_dir);
            if !matches!(kind, Kind::File(_) | Kind::Dir) {
                m.xattrs.clear(); // user.* xattrs exist on files and directories only
            }
            layer.push(Entry {
                path: p,
                kind,
                meta: m,
                pax_name: rng.chance(50),
            });
        }
        out.push(layer);
    }
    out
}
