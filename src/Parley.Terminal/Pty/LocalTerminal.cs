namespace Parley.Terminal.Pty;

/// <summary>
/// This process's own terminal: raw mode that is undone exactly once, window size, and byte I/O on fds 0 and 1
/// that bypasses <see cref="Console"/> (which would write keypad escape sequences and keep its own idea of the modes).
/// </summary>
public sealed class LocalTerminal : IDisposable
{
    /// <summary>Standard input's file descriptor.</summary>
    public const int StdIn = 0;

    /// <summary>Standard output's file descriptor.</summary>
    public const int StdOut = 1;

    /// <summary>Standard error's file descriptor.</summary>
    public const int StdErr = 2;

    private readonly int _fd;
    private readonly PtyNative.Termios _saved;
    private int _restored;

    private LocalTerminal(int fd, PtyNative.Termios saved)
    {
        _fd = fd;
        _saved = saved;
    }

    /// <summary>True when <paramref name="fd"/> is a terminal.</summary>
    public static bool IsTerminal(int fd) => OperatingSystem.IsLinux() && PtyNative.IsTerminal(fd);

    /// <summary>The window size of the terminal on <paramref name="fd"/>; null when it is not a terminal.</summary>
    public static (int Cols, int Rows)? WindowSize(int fd) => OperatingSystem.IsLinux() ? PtyNative.GetWindowSize(fd) : null;

    /// <summary>Puts the terminal on <paramref name="fd"/> in raw mode (cfmakeraw); null, changing nothing, when it is not a terminal.</summary>
    public static LocalTerminal? EnterRaw(int fd = StdIn)
    {
        if (!IsTerminal(fd))
        {
            return null;
        }
        var saved = PtyNative.GetAttributes(fd);
        PtyNative.SetAttributes(fd, PtyNative.MakeRaw(saved));
        return new LocalTerminal(fd, saved);
    }

    /// <summary>Puts back the modes the terminal had before <see cref="EnterRaw"/>; only the first call (from any thread) acts.</summary>
    public void Restore()
    {
        if (Interlocked.Exchange(ref _restored, 1) == 0)
        {
            try
            {
                PtyNative.SetAttributes(_fd, _saved);
            }
            catch (IOException)
            {
                // The terminal is gone (hung up): there is nothing left to restore.
            }
        }
    }

    public void Dispose() => Restore();

    /// <summary>Blocking read from <paramref name="fd"/>: the count, or −1 at end of input.</summary>
    public static int Read(int fd, Span<byte> buffer)
    {
        while (true)
        {
            var n = PtyNative.Read(fd, buffer);
            if (n != 0)
            {
                return n;
            }
            // A non-blocking stdin (set so by someone else) reported "nothing yet".
            PtyNative.WaitReadable(fd, 1000);
        }
    }

    /// <summary>Writes all of <paramref name="data"/> to <paramref name="fd"/>, waiting while it is full.</summary>
    public static void Write(int fd, ReadOnlySpan<byte> data) => PtyNative.WriteAll(fd, data);
}
