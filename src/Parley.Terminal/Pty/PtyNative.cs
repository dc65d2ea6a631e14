using System.Runtime.InteropServices;
using System.Text;

namespace Parley.Terminal.Pty;

/// <summary>
/// Every libc call Parley.Terminal makes, and nothing else: pseudo-terminal pairs, spawning a child
/// on the slave side, window sizes, terminal modes, waiting and signals. Linux (glibc ≥ 2.29) only;
/// constants and struct layouts are those of Linux on x86-64 and arm64, which agree for all of these.
/// </summary>
/// <remarks>
/// How the child gets its controlling terminal: <c>posix_spawn</c> with <c>POSIX_SPAWN_SETSID</c> makes it
/// a session leader before its file actions run, and the first file action opens the slave by path
/// (without <c>O_NOCTTY</c>), which makes that tty the session's controlling terminal and the child's
/// process group its foreground group. No fork from the (multithreaded) runtime, no helper executable.
/// </remarks>
internal static unsafe partial class PtyNative
{
    private const int ORdWr = 0x2;
    private const int ONoCtty = 0x100;
    private const int ONonBlock = 0x800;
    private const int OCloExec = 0x80000;
    private const int EIntr = 4;
    private const int EIo = 5;
    private const int EAgain = 11;
    private const ulong TiocGWinSz = 0x5413;
    private const ulong TiocSWinSz = 0x5414;
    private const int TcsaNow = 0;
    private const int TcsaDrain = 1;
    private const short PollIn = 0x1;
    private const short PollOut = 0x4;
    private const short PosixSpawnSetSigDef = 0x04;
    private const short PosixSpawnSetSigMask = 0x08;
    private const short PosixSpawnSetSid = 0x80;
    // Opaque glibc types, over-allocated: posix_spawn_file_actions_t is 80 bytes, posix_spawnattr_t 336, sigset_t 128.
    private const int OpaqueBytes = 1024;

    /// <summary>struct winsize.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct WinSize
    {
        public ushort Rows;
        public ushort Cols;
        public ushort XPixel;
        public ushort YPixel;
    }

    /// <summary>struct termios (60 bytes on Linux), kept opaque apart from the flag words.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 64)]
    public struct Termios : IEquatable<Termios>
    {
        public uint IFlag;
        public uint OFlag;
        public uint CFlag;
        public uint LFlag;
        private fixed byte _rest[48];

        /// <summary>ICANON (0x2) in <see cref="LFlag"/>: line editing is on.</summary>
        public readonly bool Canonical => (LFlag & 0x2) != 0;

        public readonly bool Equals(Termios other)
        {
            var self = this;
            return new ReadOnlySpan<byte>(&self, 60).SequenceEqual(new ReadOnlySpan<byte>(&other, 60));
        }

        public override readonly bool Equals(object? obj) => obj is Termios other && Equals(other);

        public override readonly int GetHashCode() => HashCode.Combine(IFlag, OFlag, CFlag, LFlag);
    }

    /// <summary>A new pseudo-terminal pair: the master (non-blocking, close-on-exec) and the slave's path.</summary>
    public static (int Master, string SlavePath) OpenPty()
    {
        var master = Check(posix_openpt(ORdWr | ONoCtty | ONonBlock | OCloExec), "posix_openpt");
        try
        {
            Check(grantpt(master), "grantpt");
            Check(unlockpt(master), "unlockpt");
            var buffer = stackalloc byte[128];
            var rc = ptsname_r(master, buffer, 128);
            if (rc != 0)
            {
                throw new IOException($"ptsname_r failed (errno {rc})");
            }
            return (master, Marshal.PtrToStringUTF8((nint)buffer)!);
        }
        catch
        {
            close(master);
            throw;
        }
    }

    /// <summary>Opens a terminal by path without making it anyone's controlling terminal (close-on-exec).</summary>
    public static int OpenNoCtty(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
        {
            return Check(open(p, ORdWr | ONoCtty | OCloExec, 0), "open " + path);
        }
    }

    /// <summary>
    /// Spawns <paramref name="file"/> (searched on PATH) in a new session whose controlling terminal is
    /// <paramref name="slavePath"/>, on its fds 0, 1 and 2, with default signal dispositions and an empty mask.
    /// </summary>
    public static int SpawnOnTerminal(string slavePath, string file, IReadOnlyList<string> argv, IReadOnlyList<string> environment, string? cwd)
    {
        var actions = (byte*)NativeMemory.AllocZeroed(OpaqueBytes);
        var attr = (byte*)NativeMemory.AllocZeroed(OpaqueBytes);
        var signals = (byte*)NativeMemory.AllocZeroed(OpaqueBytes);
        var strings = new List<nint>();
        try
        {
            Check(posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init", errnoReturned: true);
            Check(posix_spawnattr_init(attr), "posix_spawnattr_init", errnoReturned: true);
            try
            {
                var slave = Utf8(slavePath, strings);
                Check(posix_spawn_file_actions_addopen(actions, 0, slave, ORdWr, 0), "addopen", errnoReturned: true);
                Check(posix_spawn_file_actions_adddup2(actions, 0, 1), "adddup2", errnoReturned: true);
                Check(posix_spawn_file_actions_adddup2(actions, 0, 2), "adddup2", errnoReturned: true);
                if (cwd is not null)
                {
                    Check(posix_spawn_file_actions_addchdir_np(actions, Utf8(cwd, strings)), "addchdir", errnoReturned: true);
                }
                Check(posix_spawnattr_setflags(attr, (short)(PosixSpawnSetSid | PosixSpawnSetSigDef | PosixSpawnSetSigMask)), "setflags", errnoReturned: true);
                // The runtime ignores SIGPIPE and blocks nothing we want kept: the child starts with every default.
                _ = sigfillset(signals);
                Check(posix_spawnattr_setsigdefault(attr, signals), "setsigdefault", errnoReturned: true);
                _ = sigemptyset(signals);
                Check(posix_spawnattr_setsigmask(attr, signals), "setsigmask", errnoReturned: true);

                var argvPtr = StringArray(argv, strings);
                var envPtr = StringArray(environment, strings);
                int pid;
                var rc = posix_spawnp(&pid, Utf8(file, strings), actions, attr, argvPtr, envPtr);
                if (rc != 0)
                {
                    throw new IOException($"cannot run {file}: {Marshal.GetPInvokeErrorMessage(rc)}");
                }
                return pid;
            }
            finally
            {
                _ = posix_spawn_file_actions_destroy(actions);
                _ = posix_spawnattr_destroy(attr);
            }
        }
        finally
        {
            foreach (var s in strings)
            {
                NativeMemory.Free((void*)s);
            }
            NativeMemory.Free(actions);
            NativeMemory.Free(attr);
            NativeMemory.Free(signals);
        }
    }

    /// <summary>Sets the window size; on a master this signals SIGWINCH to the slave's foreground group.</summary>
    public static void SetWindowSize(int fd, int cols, int rows)
    {
        var size = new WinSize { Cols = (ushort)cols, Rows = (ushort)rows };
        Check(ioctl(fd, TiocSWinSz, &size), "ioctl(TIOCSWINSZ)");
    }

    /// <summary>The window size of a terminal, or null when <paramref name="fd"/> is not one.</summary>
    public static (int Cols, int Rows)? GetWindowSize(int fd)
    {
        WinSize size;
        return ioctl(fd, TiocGWinSz, &size) == 0 ? (size.Cols, size.Rows) : null;
    }

    public static bool IsTerminal(int fd) => isatty(fd) == 1;

    public static Termios GetAttributes(int fd)
    {
        Termios t;
        Check(tcgetattr(fd, &t), "tcgetattr");
        return t;
    }

    /// <summary>Sets terminal modes once pending output is written (TCSADRAIN).</summary>
    public static void SetAttributes(int fd, in Termios termios)
    {
        var copy = termios;
        Check(tcsetattr(fd, TcsaDrain, &copy), "tcsetattr");
    }

    /// <summary>Sets terminal modes at once (TCSANOW), before anything runs on the terminal.</summary>
    public static void SetAttributesNow(int fd, in Termios termios)
    {
        var copy = termios;
        Check(tcsetattr(fd, TcsaNow, &copy), "tcsetattr");
    }

    /// <summary><paramref name="termios"/> made raw as by <c>cfmakeraw</c>.</summary>
    public static Termios MakeRaw(Termios termios)
    {
        cfmakeraw(&termios);
        return termios;
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for <paramref name="fd"/> to be readable (or hung up); false on timeout.</summary>
    public static bool WaitReadable(int fd, int timeoutMs) => Poll(fd, PollIn, timeoutMs);

    /// <summary>Waits up to <paramref name="timeoutMs"/> for <paramref name="fd"/> to take writes; false on timeout.</summary>
    public static bool WaitWritable(int fd, int timeoutMs) => Poll(fd, PollOut, timeoutMs);

    private static bool Poll(int fd, short events, int timeoutMs)
    {
        var p = new PollFd { Fd = fd, Events = events };
        var rc = poll(&p, 1, timeoutMs);
        if (rc < 0 && Marshal.GetLastPInvokeError() != EIntr)
        {
            throw Error("poll");
        }
        return rc > 0;
    }

    /// <summary>
    /// Reads what is there: the count (&gt; 0), 0 when nothing is ready on a non-blocking fd, or −1 at the end
    /// (EOF, or EIO: every slave fd is closed).
    /// </summary>
    public static int Read(int fd, Span<byte> buffer)
    {
        while (true)
        {
            nint n;
            fixed (byte* p = buffer)
            {
                n = read(fd, p, (nuint)buffer.Length);
            }
            if (n > 0)
            {
                return (int)n;
            }
            if (n == 0)
            {
                return -1;
            }
            var errno = Marshal.GetLastPInvokeError();
            if (errno == EIntr)
            {
                continue;
            }
            if (errno == EAgain)
            {
                return 0;
            }
            if (errno == EIo)
            {
                return -1;
            }
            throw Error("read", errno);
        }
    }

    /// <summary>Writes as much as the fd takes now: the count, 0 when a non-blocking fd is full; throws on errors (EIO included).</summary>
    public static int Write(int fd, ReadOnlySpan<byte> data)
    {
        while (true)
        {
            nint n;
            fixed (byte* p = data)
            {
                n = write(fd, p, (nuint)data.Length);
            }
            if (n >= 0)
            {
                return (int)n;
            }
            var errno = Marshal.GetLastPInvokeError();
            if (errno == EIntr)
            {
                continue;
            }
            if (errno == EAgain)
            {
                return 0;
            }
            throw Error("write", errno);
        }
    }

    /// <summary>Writes all of <paramref name="data"/> to a blocking fd (stdout, a file).</summary>
    public static void WriteAll(int fd, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            var n = Write(fd, data);
            if (n == 0)
            {
                WaitWritable(fd, 1000);
            }
            data = data[n..];
        }
    }

    public static void Close(int fd) => close(fd);

    /// <summary>
    /// Waits for <paramref name="pid"/> to end (blocking the calling thread) and decodes its status:
    /// (exit code, null) or (null, signal).
    /// </summary>
    public static (int? ExitCode, int? Signal) WaitForExit(int pid)
    {
        int status;
        while (waitpid(pid, &status, 0) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno != EIntr)
            {
                throw Error("waitpid", errno);
            }
        }
        var low = status & 0x7f;
        return low == 0 ? ((status >> 8) & 0xff, null) : (null, low);
    }

    /// <summary>Sends <paramref name="signal"/> to a process (pid &gt; 0) or a process group (−pgid); false if none.</summary>
    public static bool Kill(int pid, int signal) => kill(pid, signal) == 0;

    private static byte* Utf8(string s, List<nint> owned)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        var p = (byte*)NativeMemory.Alloc((nuint)bytes.Length + 1);
        bytes.CopyTo(new Span<byte>(p, bytes.Length));
        p[bytes.Length] = 0;
        owned.Add((nint)p);
        return p;
    }

    private static byte** StringArray(IReadOnlyList<string> items, List<nint> owned)
    {
        var array = (byte**)NativeMemory.AllocZeroed((nuint)(items.Count + 1), (nuint)sizeof(nint));
        owned.Add((nint)array);
        for (var i = 0; i < items.Count; i++)
        {
            array[i] = Utf8(items[i], owned);
        }
        return array;
    }

    private static int Check(int rc, string what, bool errnoReturned = false)
    {
        if (errnoReturned ? rc != 0 : rc < 0)
        {
            throw Error(what, errnoReturned ? rc : Marshal.GetLastPInvokeError());
        }
        return rc;
    }

    // The exception's HResult is the errno, for callers that tell one failure from another (EPIPE: the reader left).
    private static IOException Error(string what, int? errno = null)
    {
        var code = errno ?? Marshal.GetLastPInvokeError();
        return new IOException($"{what} failed: {Marshal.GetPInvokeErrorMessage(code)} (errno {code})", code);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short REvents;
    }

    [LibraryImport("libc", SetLastError = true)] private static partial int posix_openpt(int flags);
    [LibraryImport("libc", SetLastError = true)] private static partial int grantpt(int fd);
    [LibraryImport("libc", SetLastError = true)] private static partial int unlockpt(int fd);
    [LibraryImport("libc")] private static partial int ptsname_r(int fd, byte* buffer, nuint length);
    [LibraryImport("libc", SetLastError = true)] private static partial int open(byte* path, int flags, int mode);
    [LibraryImport("libc", SetLastError = true)] private static partial int close(int fd);
    [LibraryImport("libc", SetLastError = true)] private static partial nint read(int fd, byte* buffer, nuint count);
    [LibraryImport("libc", SetLastError = true)] private static partial nint write(int fd, byte* buffer, nuint count);
    [LibraryImport("libc", SetLastError = true)] private static partial int poll(PollFd* fds, nuint count, int timeoutMs);
    [LibraryImport("libc", SetLastError = true)] private static partial int ioctl(int fd, ulong request, WinSize* size);
    [LibraryImport("libc", SetLastError = true)] private static partial int isatty(int fd);
    [LibraryImport("libc", SetLastError = true)] private static partial int tcgetattr(int fd, Termios* termios);
    [LibraryImport("libc", SetLastError = true)] private static partial int tcsetattr(int fd, int when, Termios* termios);
    [LibraryImport("libc")] private static partial void cfmakeraw(Termios* termios);
    [LibraryImport("libc", SetLastError = true)] private static partial int waitpid(int pid, int* status, int options);
    [LibraryImport("libc", SetLastError = true)] private static partial int kill(int pid, int signal);
    [LibraryImport("libc")] private static partial int sigemptyset(byte* set);
    [LibraryImport("libc")] private static partial int sigfillset(byte* set);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_init(byte* actions);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_destroy(byte* actions);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_addopen(byte* actions, int fd, byte* path, int flags, int mode);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_adddup2(byte* actions, int fd, int newFd);
    [LibraryImport("libc")] private static partial int posix_spawn_file_actions_addchdir_np(byte* actions, byte* path);
    [LibraryImport("libc")] private static partial int posix_spawnattr_init(byte* attr);
    [LibraryImport("libc")] private static partial int posix_spawnattr_destroy(byte* attr);
    [LibraryImport("libc")] private static partial int posix_spawnattr_setflags(byte* attr, short flags);
    [LibraryImport("libc")] private static partial int posix_spawnattr_setsigdefault(byte* attr, byte* set);
    [LibraryImport("libc")] private static partial int posix_spawnattr_setsigmask(byte* attr, byte* set);
    [LibraryImport("libc")] private static partial int posix_spawnp(int* pid, byte* file, byte* actions, byte* attr, byte** argv, byte** envp);
}
