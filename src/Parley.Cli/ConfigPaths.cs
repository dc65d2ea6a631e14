using Parley.Cli.Commands;

namespace Parley.Cli;

/// <summary>Where <c>parley</c> keeps per-user configuration: <c>$XDG_CONFIG_HOME/parley</c>, else <c>~/.config/parley</c>.</summary>
internal static class ConfigPaths
{
    private const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode GroupOrOthers = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    public static string Root()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
        var root = string.IsNullOrWhiteSpace(xdg)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config")
            : xdg;
        return Path.Combine(root, "parley");
    }

    /// <summary>
    /// Where <c>parley run</c> records terminals unless told otherwise: <c>$XDG_STATE_HOME/parley/terminals</c>,
    /// else <c>~/.local/state/parley/terminals</c>.
    /// </summary>
    public static string TerminalRecordings() => Path.Combine(StateRoot(), "terminals");

    /// <summary>Per-user state that is not configuration: <c>$XDG_STATE_HOME/parley</c>, else <c>~/.local/state/parley</c>.</summary>
    public static string StateRoot()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_STATE_HOME");
        var root = string.IsNullOrWhiteSpace(xdg)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state")
            : xdg;
        return Path.Combine(root, "parley");
    }

    /// <summary>
    /// Takes an exclusive lock on <paramref name="path"/> (created when missing and kept: deleting a lock file lets two
    /// processes lock different files), waiting up to <paramref name="timeout"/>; dispose the stream to release it.
    /// </summary>
    public static async Task<FileStream> LockFileAsync(string path, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTimeOffset.UtcNow + timeout;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTimeOffset.UtcNow < deadline)
            {
                await Task.Delay(50, cancellationToken);
            }
            catch (IOException)
            {
                throw new IdentityCommands.CliFailure($"another parley process has held {path} for {timeout.TotalSeconds:0} s; if none is running, delete that file", ExitCodes.Timeout);
            }
        }
    }

    /// <summary>Creates <paramref name="directory"/> (mode 0700 when new) and its parents.</summary>
    public static void CreatePrivateDirectory(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            Directory.CreateDirectory(directory, OwnerOnlyDirectory);
        }
    }

    /// <summary>
    /// Opens <paramref name="path"/> for writing, mode 0600 from the first byte (never readable by others,
    /// not even briefly). <paramref name="mode"/>: <see cref="FileMode.CreateNew"/> to refuse an existing file.
    /// </summary>
    public static FileStream CreatePrivateFile(string path, FileMode mode = FileMode.Create)
    {
        CreatePrivateDirectory(Path.GetDirectoryName(path)!);
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerOnlyFile;
        }
        return new FileStream(path, options);
    }

    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="text"/> atomically (a 0600 temporary file
    /// renamed over it), so a reader never sees half a file.
    /// </summary>
    public static void WritePrivateFileAtomically(string path, string text)
    {
        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        using (var file = CreatePrivateFile(temporary))
        using (var writer = new StreamWriter(file))
        {
            writer.Write(text);
        }
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>Null when only the owner can access <paramref name="path"/>; else what to run to fix it.</summary>
    public static string? ExposureOf(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return null;
        }
        var mode = File.GetUnixFileMode(path);
        return (mode & GroupOrOthers) == 0 ? null : $"other users can access {path}. Run: chmod {(Directory.Exists(path) ? "700" : "600")} {path}";
    }
}
