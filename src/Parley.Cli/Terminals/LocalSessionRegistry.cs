using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Parley.Cli.Terminals;

/// <summary>One live session hosted by a <c>parley run</c> on this machine (no hub configured).</summary>
internal sealed record LocalSessionEntry(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("command")] IReadOnlyList<string> Command,
    [property: JsonPropertyName("pid")] int Pid,
    [property: JsonPropertyName("child_pid")] int ChildPid,
    [property: JsonPropertyName("prefix")] string Prefix,
    [property: JsonPropertyName("url")] string Url,
    [property: JsonPropertyName("started_at")] DateTimeOffset StartedAt,
    [property: JsonPropertyName("allow_input")] bool AllowInput);

/// <summary>
/// The sessions <c>parley run</c> hosts itself, so that <c>parley term live</c> and <c>parley attach</c> find them
/// without a hub: <c>$XDG_STATE_HOME/parley/live-terminals.json</c> (0600), read and rewritten under an exclusive
/// lock on <c>live-terminals.json.lock</c>. An entry whose <c>parley run</c> process is gone (killed, crashed: no
/// goodbye) is pruned by whoever reads or writes the file next.
/// </summary>
internal static class LocalSessionRegistry
{
    private static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(10);
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static string FilePath => Path.Combine(ConfigPaths.StateRoot(), "live-terminals.json");

    public static Task AddAsync(LocalSessionEntry entry, CancellationToken cancellationToken) =>
        UpdateAsync(list => [.. list.Where(e => e.Id != entry.Id), entry], cancellationToken);

    public static Task RemoveAsync(string id, CancellationToken cancellationToken) =>
        UpdateAsync(list => [.. list.Where(e => e.Id != id)], cancellationToken);

    /// <summary>The live entries (stale ones are pruned from the file on the way).</summary>
    public static async Task<IReadOnlyList<LocalSessionEntry>> ListAsync(CancellationToken cancellationToken)
    {
        List<LocalSessionEntry> live = [];
        await UpdateAsync(list => live = list, cancellationToken);
        return live;
    }

    private static async Task UpdateAsync(Func<List<LocalSessionEntry>, List<LocalSessionEntry>> change, CancellationToken cancellationToken)
    {
        ConfigPaths.CreatePrivateDirectory(ConfigPaths.StateRoot());
        await using var gate = await ConfigPaths.LockFileAsync(FilePath + ".lock", LockTimeout, cancellationToken);
        var before = Read();
        var alive = before.Where(e => IsRunning(e.Pid)).ToList();
        var after = change(alive);
        if (after.Count != before.Count || !after.SequenceEqual(before))
        {
            Write(after);
        }
    }

    private static List<LocalSessionEntry> Read()
    {
        try
        {
            return JsonSerializer.Deserialize<List<LocalSessionEntry>>(File.ReadAllBytes(FilePath), Json) ?? [];
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or JsonException)
        {
            // Missing, or torn by a crash mid-write of an older version: start over (live sessions re-add on their next write).
            return [];
        }
    }

    // Written beside and renamed over, so a reader never sees half a file.
    private static void Write(List<LocalSessionEntry> entries)
    {
        var temp = FilePath + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using (var stream = new FileStream(temp, options))
        {
            JsonSerializer.Serialize(stream, entries, Json);
        }
        File.Move(temp, FilePath, overwrite: true);
    }

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId)
        {
            return true;
        }
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }
}
