using System.Text.Json;
using System.Text.Json.Serialization;

namespace Parley.Terminal.Recording;

/// <summary>
/// <c>&lt;prefix&gt;.meta.json</c>: what ran, when, at which sizes, and how it ended (docs/terminal-recordings.md).
/// Written when the recording starts, again at every resize and at the end, each time by an atomic rename.
/// </summary>
public sealed class RecordingMeta
{
    /// <summary>The layout version; this is 1.</summary>
    public int Version { get; set; } = 1;

    /// <summary>The session id: <c>YYYYMMDD-HHMMSS-xxxx</c> (UTC start, 4 hex digits), only <c>[a-z0-9_-]</c>.</summary>
    public string Id { get; set; } = "";

    /// <summary>A human label (default: the command's basename).</summary>
    public string Name { get; set; } = "";

    /// <summary>The program and its arguments.</summary>
    public List<string> Command { get; set; } = [];

    /// <summary>The working directory the command started in.</summary>
    public string? Cwd { get; set; }

    /// <summary>When the command started (UTC). All <c>t_us</c> times count from this instant.</summary>
    public DateTimeOffset StartedAt { get; set; }

    /// <summary>When the recording ended; null while it runs (or if the recorder died).</summary>
    public DateTimeOffset? EndedAt { get; set; }

    /// <summary>Microseconds from start to end; null while it runs.</summary>
    public long? DurationUs { get; set; }

    /// <summary>The command's exit status; null while it runs or when a signal killed it.</summary>
    public int? ExitCode { get; set; }

    /// <summary>The signal that killed the command; null otherwise.</summary>
    public int? Signal { get; set; }

    /// <summary>Columns at start.</summary>
    public int Cols { get; set; }

    /// <summary>Rows at start.</summary>
    public int Rows { get; set; }

    /// <summary>Every size change after the start, in time order.</summary>
    public List<RecordedResize> Resizes { get; set; } = [];

    /// <summary>The command's process id.</summary>
    public int Pid { get; set; }

    /// <summary>Whether viewers other than the local terminal may send input (<c>parley run --allow-input</c>).</summary>
    public bool AllowInput { get; set; }

    /// <summary>The hub user who owns the session, in a hub's copy of it; null in a local recording.</summary>
    public string? Owner { get; set; }

    /// <summary>The fleet instance this session is a run of, when the hub itself runs it under a terminal; null otherwise.</summary>
    public string? Instance { get; set; }

    /// <summary>Bytes in <c>.output</c> at the end; null while it runs.</summary>
    public long? OutputBytes { get; set; }

    /// <summary>Bytes in <c>.input</c> at the end; null while it runs.</summary>
    public long? InputBytes { get; set; }

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
    };

    internal RecordingMeta Clone() => JsonSerializer.Deserialize<RecordingMeta>(JsonSerializer.SerializeToUtf8Bytes(this, Json), Json)!;
}

/// <summary>A size change <paramref name="TUs"/> microseconds after the start.</summary>
public sealed record RecordedResize(
    [property: JsonPropertyName("t_us")] long TUs,
    [property: JsonPropertyName("cols")] int Cols,
    [property: JsonPropertyName("rows")] int Rows);

/// <summary>One time-index entry: the stream's byte at <paramref name="Offset"/> passed <paramref name="TimeUs"/> µs after the start.</summary>
public readonly record struct TimeIndexEntry(long Offset, long TimeUs);

/// <summary>The file names of a recording: <c>&lt;prefix&gt;.output</c>, <c>.output.tidx</c>, <c>.input</c>, <c>.input.tidx</c>, <c>.meta.json</c>.</summary>
public static class RecordingFiles
{
    public const string Output = ".output";
    public const string Input = ".input";
    public const string Index = ".tidx";
    public const string Meta = ".meta.json";

    /// <summary>Every file suffix of a recording, the meta first.</summary>
    public static readonly IReadOnlyList<string> Suffixes = [Meta, Output + Index, Input + Index, Output, Input];

    /// <summary>Bytes the recording at <paramref name="prefix"/> takes on disk (the files that exist).</summary>
    public static long SizeOf(string prefix) =>
        Suffixes.Sum(suffix => new FileInfo(prefix + suffix) is { Exists: true } file ? file.Length : 0);

    /// <summary>When the recording at <paramref name="prefix"/> was last written (its newest file), or null without files.</summary>
    public static DateTimeOffset? LastWriteOf(string prefix) =>
        Suffixes.Select(suffix => new FileInfo(prefix + suffix)).Where(file => file.Exists)
            .Select(file => (DateTimeOffset?)new DateTimeOffset(file.LastWriteTimeUtc, TimeSpan.Zero)).Max();

    /// <summary>Deletes the recording at <paramref name="prefix"/>: its data files first, the meta (which names it) last.</summary>
    public static void Delete(string prefix)
    {
        foreach (var suffix in Suffixes.Reverse())
        {
            File.Delete(prefix + suffix);
        }
    }

    /// <summary>True when <paramref name="id"/> is a valid session id (1-64 of <c>[a-z0-9_-]</c>), safe as a topic suffix and a file name.</summary>
    public static bool IsValidId(string id) =>
        id.Length is > 0 and <= 64 && id.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' or '-');

    /// <summary>A new session id for a start at <paramref name="startedAt"/>: <c>YYYYMMDD-HHMMSS-xxxx</c>.</summary>
    public static string NewId(DateTimeOffset startedAt) =>
        $"{startedAt.UtcDateTime:yyyyMMdd-HHmmss}-{Random.Shared.Next(0x10000):x4}";
}
