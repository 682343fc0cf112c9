//! The btrfs ioctls the driver uses, called directly (no `btrfs` command): subvolume
//! create, snapshot and destroy, subvolume info, tree search, inode paths and qgroup limits.
//! Layouts follow `include/uapi/linux/btrfs.h`.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;

const BTRFS_IOCTL_MAGIC: u64 = 0x94;
const VOL_NAME_MAX: usize = 4087;
const SUBVOL_NAME_MAX: usize = 4039;

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | (BTRFS_IOCTL_MAGIC << 8) | nr
}
const W: u64 = 1;
const R: u64 = 2;
const RW: u64 = 3;

#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; VOL_NAME_MAX + 1],
}

#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; SUBVOL_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_get_subvol_info_args`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SubvolInfo {
    /// The subvolume's tree id (also its level-0 qgroup id).
    pub treeid: u64,
    name: [u8; 256],
    parent_id: u64,
    dirid: u64,
    /// The last transaction that changed the subvolume.
    pub generation: u64,
    flags: u64,
    /// This subvolume's uuid.
    pub uuid: [u8; 16],
    /// The uuid of the subvolume it is a snapshot of (zero when created empty).
    pub parent_uuid: [u8; 16],
    received_uuid: [u8; 16],
    ctransid: u64,
    /// The transaction the subvolume (or snapshot) was created in: everything changed
    /// since has a larger transid.
    pub otransid: u64,
    stransid: u64,
    rtransid: u64,
    times: [u64; 8],
    reserved: [u64; 8],
}

#[repr(C)]
struct SearchKey {
    tree_id: u64,
    min_objectid: u64,
    max_objectid: u64,
    min_offset: u64,
    max_offset: u64,
    min_transid: u64,
    max_transid: u64,
    min_type: u32,
    max_type: u32,
    nr_items: u32,
    unused: u32,
    unused1: [u64; 4],
}

const SEARCH_BUF: usize = 4096 - std::mem::size_of::<SearchKey>();

#[repr(C)]
struct SearchArgs {
    key: SearchKey,
    buf: [u8; SEARCH_BUF],
}

#[repr(C)]
struct InoPathArgs {
    inum: u64,
    size: u64,
    reserved: [u64; 4],
    fspath: u64,
}

#[repr(C)]
struct QgroupLimitArgs {
    qgroupid: u64,
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

const IOC_SUBVOL_CREATE: u64 = ioc(W, 14, std::mem::size_of::<VolArgs>());
const IOC_SNAP_DESTROY: u64 = ioc(W, 15, std::mem::size_of::<VolArgs>());
const IOC_TREE_SEARCH: u64 = ioc(RW, 17, std::mem::size_of::<SearchArgs>());
const IOC_SNAP_CREATE_V2: u64 = ioc(W, 23, std::mem::size_of::<VolArgsV2>());
const IOC_INO_PATHS: u64 = ioc(RW, 35, std::mem::size_of::<InoPathArgs>());
const IOC_QGROUP_LIMIT: u64 = ioc(R, 43, std::mem::size_of::<QgroupLimitArgs>());
const IOC_GET_SUBVOL_INFO: u64 = ioc(R, 60, std::mem::size_of::<SubvolInfo>());
const IOC_WAIT_SYNC: u64 = ioc(W, 22, 8);
const IOC_START_SYNC: u64 = ioc(R, 24, 8);

/// The inode item type in a filesystem tree.
pub const INODE_ITEM_KEY: u32 = 1;
const QGROUP_LIMIT_MAX_RFER: u64 = 1;

fn call<T>(fd: impl AsFd, req: u64, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is a live, exclusively borrowed struct laid out as the kernel expects
    // for `req` (the request encodes its size); the kernel reads/writes only within it.
    let r = unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            req as _,
            arg as *mut T as *mut libc::c_void,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn copy_name(dst: &mut [u8], name: &OsStr) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= dst.len() || b.contains(&0) || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad subvolume name",
        ));
    }
    dst[..b.len()].copy_from_slice(b);
    Ok(())
}

/// Creates an empty subvolume `name` in directory `dir`.
pub fn subvol_create(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    let mut a = VolArgs {
        fd: 0,
        name: [0; VOL_NAME_MAX + 1],
    };
    copy_name(&mut a.name, name)?;
    call(dir, IOC_SUBVOL_CREATE, &mut a)
}

/// Snapshots the subvolume open as `src` to `name` in directory `dir` (writable).
pub fn snapshot(src: impl AsFd, dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    let mut a = VolArgsV2 {
        fd: src.as_fd().as_raw_fd() as i64,
        transid: 0,
        flags: 0,
        unused: [0; 4],
        name: [0; SUBVOL_NAME_MAX + 1],
    };
    copy_name(&mut a.name, name)?;
    call(dir, IOC_SNAP_CREATE_V2, &mut a)
}

/// Destroys the subvolume `name` in directory `dir`, contents and all.
pub fn subvol_destroy(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    let mut a = VolArgs {
        fd: 0,
        name: [0; VOL_NAME_MAX + 1],
    };
    copy_name(&mut a.name, name)?;
    call(dir, IOC_SNAP_DESTROY, &mut a)
}

/// Facts about the subvolume open as `fd`.
pub fn subvol_info(fd: impl AsFd) -> io::Result<SubvolInfo> {
    // SAFETY: SubvolInfo is plain integers and byte arrays; all-zero is a valid value.
    let mut a: SubvolInfo = unsafe { std::mem::zeroed() };
    call(fd, IOC_GET_SUBVOL_INFO, &mut a)?;
    Ok(a)
}

/// Commits the running transaction of the filesystem of `fd` and waits for it. Inode
/// updates wait in btrfs's delayed-inode cache until a commit puts them in the tree, so a
/// tree search needs one first; file data is not flushed by it.
pub fn commit_transaction(fd: impl AsFd) -> io::Result<u64> {
    let fd = fd.as_fd();
    let mut transid: u64 = 0;
    call(fd, IOC_START_SYNC, &mut transid)?;
    call(fd, IOC_WAIT_SYNC, &mut transid)?;
    Ok(transid)
}

/// One item found by [`search_inodes_since`]: an inode changed after a transaction.
#[derive(Debug, Clone, Copy)]
pub struct ChangedInode {
    pub ino: u64,
    pub mode: u32,
}

/// Every inode of the subvolume open as `fd` whose item was changed in a transaction after
/// `since`. The kernel only visits tree blocks newer than `since`, so the cost follows the
/// size of the change, not of the subvolume.
pub fn search_inodes_since(fd: impl AsFd, since: u64) -> io::Result<Vec<ChangedInode>> {
    let fd = fd.as_fd();
    let mut out = Vec::new();
    let (mut objectid, mut typ, mut offset) = (0u64, 0u32, 0u64);
    loop {
        let mut a = SearchArgs {
            key: SearchKey {
                tree_id: 0,
                min_objectid: objectid,
                max_objectid: u64::MAX,
                min_offset: offset,
                max_offset: u64::MAX,
                min_transid: since + 1,
                max_transid: u64::MAX,
                min_type: typ,
                max_type: u32::MAX,
                nr_items: 4096,
                unused: 0,
                unused1: [0; 4],
            },
            buf: [0; SEARCH_BUF],
        };
        call(fd, IOC_TREE_SEARCH, &mut a)?;
        let n = a.key.nr_items;
        if n == 0 {
            return Ok(out);
        }
        let mut pos = 0usize;
        for _ in 0..n {
            let h = &a.buf[pos..pos + 32];
            let u64_at =
                |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
            let item_objectid = u64_at(h, 8);
            let item_offset = u64_at(h, 16);
            let item_type = u32::from_le_bytes(h[24..28].try_into().unwrap_or([0; 4]));
            let len = u32::from_le_bytes(h[28..32].try_into().unwrap_or([0; 4])) as usize;
            let data = &a.buf[pos + 32..pos + 32 + len];
            // struct btrfs_inode_item: generation, transid, size, nbytes, block_group,
            // nlink (u32), uid, gid, mode (u32) at 52.
            if item_type == INODE_ITEM_KEY && len >= 56 && u64_at(data, 8) > since {
                let mode = u32::from_le_bytes(data[52..56].try_into().unwrap_or([0; 4]));
                out.push(ChangedInode {
                    ino: item_objectid,
                    mode,
                });
            }
            pos += 32 + len;
            (objectid, typ, offset) = (item_objectid, item_type, item_offset);
        }
        // The next key after the last one returned.
        if offset < u64::MAX {
            offset += 1;
        } else if typ < u32::MAX {
            typ += 1;
            offset = 0;
        } else if objectid < u64::MAX {
            objectid += 1;
            typ = 0;
            offset = 0;
        } else {
            return Ok(out);
        }
    }
}

/// Every path (relative to the subvolume root) of inode `ino` in the subvolume open as `fd`.
pub fn inode_paths(fd: impl AsFd, ino: u64) -> io::Result<Vec<Vec<u8>>> {
    let mut size = 64 * 1024;
    loop {
        let mut buf = vec![0u64; size / 8];
        let mut a = InoPathArgs {
            inum: ino,
            size: size as u64,
            reserved: [0; 4],
            fspath: buf.as_mut_ptr() as u64,
        };
        call(&fd, IOC_INO_PATHS, &mut a)?;
        // struct btrfs_data_container: bytes_left, bytes_missing, elem_cnt, elem_missed
        // (u32 each), then `elem_cnt` offsets (from the start of val[]) of C strings.
        let head = buf[0].to_le_bytes();
        let head2 = buf[1].to_le_bytes();
        let bytes_missing = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let elem_cnt = u32::from_le_bytes([head2[0], head2[1], head2[2], head2[3]]) as usize;
        if bytes_missing > 0 && size < 16 * 1024 * 1024 {
            size *= 4;
            continue;
        }
        // SAFETY: reinterpreting the u64 buffer as bytes, same allocation and length.
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, buf.len() * 8) };
        let val = &bytes[16..];
        let mut out = Vec::with_capacity(elem_cnt);
        for i in 0..elem_cnt.min(val.len() / 8) {
            let off =
                u64::from_le_bytes(val[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8])) as usize;
            if off >= val.len() {
                continue;
            }
            let end = val[off..]
                .iter()
                .position(|&b| b == 0)
                .map_or(val.len(), |p| off + p);
            out.push(val[off..end].to_vec());
        }
        return Ok(out);
    }
}

/// Limits the space the subvolume with tree id `subvol` may reference. Fails with
/// `ENOTCONN` when quotas are not enabled on the filesystem.
pub fn qgroup_limit(fd: impl AsFd, subvol: u64, max_bytes: u64) -> io::Result<()> {
    let mut a = QgroupLimitArgs {
        qgroupid: subvol,
        flags: QGROUP_LIMIT_MAX_RFER,
        max_rfer: max_bytes,
        max_excl: 0,
        rsv_rfer: 0,
        rsv_excl: 0,
    };
    call(fd, IOC_QGROUP_LIMIT, &mut a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_the_kernel_header() {
        // Values from linux/btrfs.h as compiled for x86_64 / aarch64.
        assert_eq!(IOC_SUBVOL_CREATE, 0x5000_940e);
        assert_eq!(IOC_SNAP_DESTROY, 0x5000_940f);
        assert_eq!(IOC_SNAP_CREATE_V2, 0x5000_9417);
        assert_eq!(IOC_TREE_SEARCH, 0xd000_9411);
        assert_eq!(IOC_INO_PATHS, 0xc038_9423);
        assert_eq!(IOC_QGROUP_LIMIT, 0x8030_942b);
        assert_eq!(IOC_GET_SUBVOL_INFO, 0x81f8_943c);
        assert_eq!(IOC_START_SYNC, 0x8008_9418);
        assert_eq!(IOC_WAIT_SYNC, 0x4008_9416);
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
        assert_eq!(std::mem::size_of::<VolArgsV2>(), 4096);
        assert_eq!(std::mem::size_of::<SearchArgs>(), 4096);
        assert_eq!(std::mem::size_of::<SubvolInfo>(), 504);
    }
}
