using System.Runtime.InteropServices;

namespace Parley.Hub.Fleet;

/// <summary>
/// SIGTERM for a child process. .NET's <see cref="System.Diagnostics.Process.Kill()"/> sends SIGKILL only, so
/// on Unix the polite signal goes through libc's <c>kill(2)</c>.
/// </summary>
internal static partial class PosixSignals
{
    /// <summary>SIGTERM's number (15 on Linux and macOS).</summary>
    public const int SigTerm = 15;

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false when it failed (e.g. the process is gone).</summary>
    public static bool Send(int pid, int signal) => !OperatingSystem.IsWindows() && Kill(pid, signal) == 0;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
