/**
 * The pagefs command line. Each subcommand lives in its own module; this file only
 * declares them (names, arguments, options, help) and turns a UserError into one line
 * on stderr and its exit code, never a stack trace.
 */
import { Command, Option, CommanderError } from 'commander';
import { UserError } from '../util/errors.js';
import { mkfsCommand } from './mkfs.js';
import { mountCommand } from './mount.js';
import { defaultReaderThreads } from '../store/readers.js';
import { umountCommand } from './umount.js';
import { fsckCommand } from './fsck.js';
import { statCommand } from './stat.js';
import { shiftCommand } from './shift.js';
import { stressCommand } from './stress.js';
import { FSX_OPS, DEFAULT_MIX as FSX_DEFAULT_MIX } from '../stress/fsx-engine.js';
import { demoCommand } from './demo.js';
import { cloneCommand } from './clone.js';

// `pagefs --help | head` closes the pipe early: that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

const program = new Command();
program
  .name('pagefs')
  .description('A FUSE filesystem whose files live as blocks in one SQLite database, with its own page cache\n' +
    'and a per-file invalidate_lock that keeps reads and mmaps from ever seeing stale data.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  // Before any .command(): commander copies the override into each subcommand as it is declared.
  .exitOverride()
  .addHelpText('after', `
Examples:
  pagefs mkfs /var/lib/pagefs/store.db --capacity 4G
  pagefs mount /var/lib/pagefs/store.db /mnt/pagefs
  pagefs stat /mnt/pagefs
  pagefs umount /mnt/pagefs
  pagefs fsck /var/lib/pagefs/store.db

As a mount helper (with pagefs on PATH, e.g. ln -s $PWD/bin/pagefs.js /usr/local/bin/pagefs):
  mount -t fuse.pagefs /var/lib/pagefs/store.db /mnt/pagefs -o allow_other,cache_size=1G
  /etc/fstab: /var/lib/pagefs/store.db /mnt/pagefs fuse.pagefs defaults,allow_other 0 0
  (the helper runs: pagefs STORE MOUNTPOINT -o OPTIONS, which means pagefs mount)

Exit status: 0 on success, 1 on failure (a one-line message says why), 2 on bad usage.`);

program.command('mkfs')
  .description('Create a new, empty pagefs store (one SQLite file).')
  .argument('<store>', 'path of the store file to create; it must not exist')
  .option('-b, --block-size <bytes>', 'block size: a power of two from 1024 to 65536', '4096')
  .option('-c, --capacity <size>', 'how much file data the store may hold (e.g. 512M, 4G, 1T)', '1G')
  .addHelpText('after', `
The capacity bounds the data blocks, not the SQLite file's metadata; statfs and df report it,
and writes beyond it fail with ENOSPC. Blocks smaller than 4096 bytes make cache pages that
hold several blocks (the partial-page case of the invalidate_lock).

Example:
  pagefs mkfs store.db --capacity 8G --block-size 1024`)
  .action(mkfsCommand);

program.command('mount')
  .description('Mount a store. Runs the daemon in the background and returns once the mount answers.')
  .argument('<store>', 'the store file (made by pagefs mkfs)')
  .argument('<mountpoint>', 'an existing, empty directory')
  .option('-f, --foreground', 'stay in the foreground; the daemon logs to stderr; Ctrl-C unmounts (the detached daemon runs as node --initial-old-space-size=256; give node that flag for the same heap: docs/DESIGN.md, "Heap")')
  .option('-o, --options <opts>', 'comma-separated mount options: FUSE ones (allow_other, ro, noatime, ...) and pagefs\'s own ' +
    '(cache_size=SIZE, debug_locks); repeatable', (v: string, prev: string[]) => [...prev, v], [] as string[])
  .option('--cache-size <size>', 'page cache cap (clean and dirty pages together)', '256M')
  .addOption(new Option('--read-threads <n>', 'block-reader threads with their own SQLite connections, so that large cache fills overlap other requests ' +
    '(reads of up to 16 KiB stay on the main thread); 0 reads everything on the main thread')
    .default(String(defaultReaderThreads()), '1 on a machine with two CPUs or fewer, else 2'))
  .option('--poll-us <us>', 'after a request that came within this many microseconds of the daemon finishing the one before, poll for the next ' +
    'that long before sleeping (a process waiting on one request at a time sends it in a few microseconds, and a sleep ' +
    'and wake-up costs more on a virtual machine); 0 never polls; at most 10000', '50')
  .option('--dirty-expire <seconds>', 'written data the daemon holds in its cache goes to the store, unasked, once it has been dirty this long ' +
    '(checked every 5 seconds; fsync, close, a full cache and unmount write it earlier), as the kernel\'s vm.dirty_expire_centisecs does for ' +
    'disk filesystems; a crash of the daemon can lose unsynced data up to that old, plus one 5-second round; 0 writes everything back every 5 seconds; at most 3600', '30')
  .option('--log <file>', 'where the background daemon logs (default: STORE.log)')
  .option('--debug-locks', 'check every lock acquisition against the lock order and fail loudly on a violation')
  .addOption(new Option('--unsafe-no-invalidate-lock', 'DEBUGGING AID, UNSAFE: fills of the page cache skip the invalidate_lock, ' +
    'so reads can return stale or foreign data after a punch. For demonstrating the race only.'))
  .addOption(new Option('--inject-delay <point=ms>', 'DEBUGGING AID: sleep at a point of every cache fill to widen the race window; ' +
    'points: after-lookup (between block-map lookup and block read), before-insert (between block read and cache insert); repeatable')
    .argParser((v: string, prev: string[] = []) => [...prev, v]))
  .addOption(new Option('--ready-fd <fd>').hideHelp())
  .addHelpText('after', `
The store may be mounted by one daemon at a time; a second mount is refused. The mount is
served by a daemon process that writes dirty data back on fsync, on close, when its cache
is full, once the data has been dirty for --dirty-expire seconds (30, looked at every 5
seconds), and at unmount; pagefs umount waits until it has.

The daemon answers pagefs stat on a control socket, $TMPDIR/pagefs-ctl-PID.sock (mode
0600; TMPDIR, else TMP or TEMP, else /tmp); the mountpoint may not be that directory. If
the socket cannot be made there, the daemon logs why and serves without it. A daemon
that died without unmounting leaves its socket behind; a daemon started later removes
it once it is 10 s old.

Examples:
  pagefs mount store.db /mnt/p
  pagefs mount store.db /mnt/p -o allow_other --cache-size 1G
  pagefs mount store.db /mnt/p --foreground --debug-locks`)
  .action(mountCommand);

program.command('umount')
  .description('Unmount a pagefs mount and wait until its daemon has written everything back and exited.')
  .argument('<mountpoint>', 'the mounted directory')
  .option('-l, --lazy', 'detach now even if busy (umount -l); the daemon finishes when the last user leaves')
  .action(umountCommand);

program.command('fsck')
  .description('Check a store\'s consistency: block refcounts, free list, block maps and each file\'s count of them, sizes, directory links.')
  .argument('<store>', 'the store file; it must not be mounted')
  .addHelpText('after', `
Exit status: 0 when the store is clean, 1 with one line per problem otherwise.
Inodes left unlinked-but-open by a daemon that died are listed as notes, not problems:
the next mount removes them. So is a store of format version 1 (made by an earlier
pagefs), which the next mount upgrades to version 2 by counting every file's blocks
once; pagefs builds that read only version 1 then refuse it.`)
  .action(fsckCommand);

program.command('stat')
  .description('Show a store\'s format, block size, capacity, blocks used, shared and free, and inodes. ' +
    'Given the mountpoint of a mounted store, also the daemon\'s live figures: page cache, lock waits, the block-map cache, ' +
    'reader threads, checkpoints, the requests it received by op, and its memory.')
  .argument('<target>', 'a store file, or the mountpoint of a mounted store')
  .option('--json', 'print one JSON object instead of text')
  .action(statCommand);

program.command('clone')
  .description('Copy a file within a pagefs mount by sharing its blocks (a reflink through copy_file_range).')
  .argument('<src>', 'the file to clone')
  .argument('<dst>', 'the new file, on the same mount')
  .option('--force', 'replace the contents of DST if it exists')
  .addHelpText('after', `
Whole blocks are shared, not copied: the clone takes no data blocks until one side is
written (copy on write). Holes in SRC stay holes. coreutils cp does the same by itself,
since it uses copy_file_range.

Example:
  pagefs clone /mnt/p/image.raw /mnt/p/image-snapshot.raw`)
  .action(cloneCommand);

program.command('stress')
  .description('Stress a directory on any Linux filesystem and check every read against a model.')
  .argument('<dir>', 'a directory on the filesystem to test (a pagefs mount, tmpfs, ext4, XFS)')
  .option('--race', 'the page-cache race: readers (read(2), O_DIRECT, mmap) against a writer that punches, zeroes, rewrites and reuses blocks')
  .option('--fsx', 'the fsx model checker: a seeded random sequence of operations over a few files, every read checked against a model')
  .option('--crash <n>', 'crash under load: n times mount --store on DIR, run a workload, SIGKILL the daemon, fsck, remount and check every file up to its last fsync')
  .option('--readers <n>', 'processes reading with read(2)', '2')
  .option('--direct-readers <n>', 'processes reading with O_DIRECT', '1')
  .option('--mappers <n>', 'processes reading through a shared mapping', '1')
  .option('--duration <seconds>', 'how long to run', '10')
  .option('--seed <n>', 'random seed (printed with every result; the same seed repeats the writer\'s operations)')
  .option('--blocks <n>', 'size of the target file in blocks', '1024')
  .option('--variant <name>', 'punch (punch, zero, rewrite) or shift (also insert and collapse ranges: pagefs only)', 'punch')
  .option('--stop-on-first', 'stop at the first violation')
  .option('--ops <n>', 'fsx: number of operations', '10000')
  .option('--files <n>', 'fsx: number of files', '2')
  .option('--max-size <bytes>', 'fsx: largest file size (suffixes K, M)', '256K')
  .option('--op-mix <list>', `fsx: operation weights, NAME=WEIGHT,...; 0 switches one off; names: ${FSX_OPS.join(', ')}`)
  .option('--remount-every <n>', 'fsx: unmount and mount the pagefs store again every n operations (needs --store), then check every file')
  .option('--store <store>', 'fsx: the store mounted at (or above) DIR, for --remount-every; crash: the (unmounted) store to mount on DIR')
  .option('--json', 'print the result as one JSON object')
  .addHelpText('after', `
Every block written is stamped (file, block, generation), and a model shared by the
processes says what each block must hold once the operation on it has returned. A read
that returns another file's block, or anything but the model's bytes for a block no
operation touched during the read, is a violation: it is printed with the offset, the
expected and the actual contents and whose block those were. Exit status 1 on any
violation.

The fsx checker (--fsx) runs one operation at a time over --files files: write
(block-stamped when aligned, random bytes otherwise), read, mapped read and write
(msync MS_SYNC), O_DIRECT read, truncate, fallocate in every mode the filesystem has
(0, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE with and without KEEP_SIZE, COLLAPSE and INSERT,
on pagefs through its ioctls), copy_file_range within and across files, SEEK_DATA and
SEEK_HOLE, fsync, close and reopen. What the filesystem lacks is probed at the start
and skipped. Every read is checked against a model of each file; the first mismatch
stops the run with the seed, the operation number, the last operations, the first
differing range (expected and actual bytes) and whose block the bytes were. The same
seed repeats the same operations. Default weights: ${Object.entries(FSX_DEFAULT_MIX).map(([k, v]) => `${k}=${v}`).join(',')}.

Examples:
  pagefs stress --race /mnt/p --duration 60 --readers 4 --mappers 2
  pagefs stress --fsx /mnt/p --ops 100000 --seed 42
  pagefs stress --fsx /dev/shm/x --op-mix mapwrite=0,copy=20 --files 3
  pagefs stress --fsx /mnt/p --remount-every 5000 --store store.db`)
  .action(stressCommand);

program.command('demo')
  .description('Show punch-hole consistency live: the race stress without and with the invalidate_lock, on a temporary store.')
  .option('--seconds <n>', 'how long the run with the lock lasts (the run without stops at the first violation, at most 20 s)', '15')
  .option('--seed <n>', 'random seed')
  .option('--keep', 'keep the temporary directory (store and daemon log) for inspection')
  .addHelpText('after', `
Needs root (it mounts). Exit status 0 when the run without the lock caught stale data
and the run with the lock stayed clean.`)
  .action(demoCommand);

for (const kind of ['collapse', 'insert'] as const) {
  program.command(kind)
    .description(kind === 'collapse'
      ? 'Remove a range from a file on a pagefs mount and shift the rest down (fallocate COLLAPSE_RANGE).'
      : 'Insert a hole into a file on a pagefs mount and shift the rest up (fallocate INSERT_RANGE).')
    .argument('<file>', 'a regular file on a pagefs mount')
    .argument('<offset>', 'byte offset, a multiple of the block size (suffixes K, M, G allowed)')
    .argument('<length>', 'byte count, a multiple of the block size')
    .addHelpText('after', `
The kernel's FUSE client refuses these fallocate modes before any daemon sees them, so
pagefs offers them as an ioctl on the open file. Rules as on ext4: offset and length
block-aligned (else EINVAL)${kind === 'collapse' ? '; the range must end before EOF (else EINVAL)' : '; offset before EOF (else EINVAL); the file may not outgrow the maximum size (EFBIG)'}.
On failure the errno name is printed and the exit status is 1.

Example:
  pagefs ${kind} /mnt/p/file 4096 8192`)
    .action(shiftCommand(kind));
}

/**
 * The mount helper convention (mount.fuse3, fstab, mount -t fuse.pagefs): the helper
 * runs the program named after the subtype as `pagefs SOURCE MOUNTPOINT -o OPTIONS`.
 * Two leading operands that are not a command mean exactly that.
 */
function helperForm(argv: string[]): string[] {
  const [first, second] = argv.slice(2);
  const known = new Set(program.commands.flatMap((c) => [c.name(), ...c.aliases()]));
  if (first && second && !first.startsWith('-') && !second.startsWith('-') && !known.has(first) && first !== 'help') {
    return [...argv.slice(0, 2), 'mount', ...argv.slice(2)];
  }
  return argv;
}

try {
  await program.parseAsync(helperForm(process.argv));
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? 0 : 2;
  } else if (e instanceof UserError) {
    process.stderr.write(`${e.message}\n`);
    process.exitCode = e.exitCode;
  } else {
    process.stderr.write(`pagefs: internal error: ${(e as Error)?.stack ?? e}\n`);
    process.exitCode = 1;
  }
}
