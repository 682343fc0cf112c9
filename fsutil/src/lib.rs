//! Filesystem helpers shared by every strata crate (drivers, layer store, runtime, union
//! server, registry client): a crate of its own so none of them needs the drivers for them.
//!
//! Everything that touches an untrusted tree works relative to directory file descriptors,
//! so a symlink planted in a layer can never redirect a write outside its root.

pub mod atomic;
pub mod backing;
pub mod copy;
pub mod helper;
pub mod kernel;
pub mod limits;
pub mod manifest;
pub mod mounts;
pub mod nofollow;
pub mod parsed_cache;
pub mod process;
pub mod pump;
pub mod resolve;
pub mod testing;
pub mod tree;
pub mod walk;
pub mod whiteout_names;
pub mod xattr;

pub use atomic::{
    create_temp_beside, fsync_dir, restrict_dir, temp_name_beside, write_atomic, write_replace,
    write_synced,
};
pub use backing::backing_fs;
pub use copy::{
    copy_data, copy_entry_at, copy_meta_at, copy_tree, copy_tree_fds, times_of, CopyOptions,
};
pub use helper::strata_binary;
pub use kernel::kernel_has;
pub use manifest::tree_manifest;
pub use mounts::{is_mounted, mount};
pub use nofollow::chmod_at;
pub use pump::pump;
pub use resolve::{open_in_root, open_root, read_regular_in_root, OpenMode};
pub use tree::{clear_dir_at, list_dir, remove_all_at, remove_tree};
pub use walk::{check_depth, walk_at, MAX_TREE_DEPTH};
