using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Parley.Terminal.Recording;

/// <summary>
/// Reads a recording, finished or still being written: byte-exact ranges of either stream, the time indexes
/// and the meta. Lengths are those of the files now, so a live recording's readers see what its writer appended.
/// </summary>
public sealed class RecordingReader
{
    private RecordingReader(string prefix, RecordingMeta meta)
    {
        Prefix = prefix;
        Meta = meta;
    }

    /// <summary>The path prefix: <c>&lt;dir&gt;/&lt;id&gt;</c>.</summary>
    public string Prefix { get; }

    /// <summary>The meta as read by <see cref="Open"/>.</summary>
    public RecordingMeta Meta { get; }

    /// <summary>Bytes in <c>.output</c> now.</summary>
    public long OutputLength => LengthOf(RecordingFiles.Output);

    /// <summary>Bytes in <c>.input</c> now.</summary>
    public long InputLength => LengthOf(RecordingFiles.Input);

    /// <summary>Opens the recording at <paramref name="prefix"/>; throws <see cref="FileNotFoundException"/> without a meta file.</summary>
    public static RecordingReader Open(string prefix)
    {
        var path = prefix + RecordingFiles.Meta;
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"no recording at {prefix} ({path} is missing)", path);
        }
        using var file = File.OpenRead(path);
        var meta = JsonSerializer.Deserialize<RecordingMeta>(file, RecordingMeta.Json)
            ?? throw new InvalidDataException($"{path} is empty");
        return new RecordingReader(prefix, meta);
    }

    /// <summary>Up to <paramref name="limit"/> bytes of output from <paramref name="offset"/> (fewer at the end; none past it).</summary>
    public byte[] ReadOutput(long offset, int limit) => ReadRange(RecordingFiles.Output, offset, limit);

    /// <summary>Up to <paramref name="limit"/> bytes of input from <paramref name="offset"/>.</summary>
    public byte[] ReadInput(long offset, int limit) => ReadRange(RecordingFiles.Input, offset, limit);

    /// <summary>The output's time index, in file order (offsets and times never decrease).</summary>
    public IEnumerable<TimeIndexEntry> OutputIndex() => ReadIndex(Prefix + RecordingFiles.Output + RecordingFiles.Index);

    /// <summary>The input's time index.</summary>
    public IEnumerable<TimeIndexEntry> InputIndex() => ReadIndex(Prefix + RecordingFiles.Input + RecordingFiles.Index);

    /// <summary>
    /// The output as timed chunks: each index entry's bytes up to the next entry (the last up to the file's end),
    /// read in pieces of at most <paramref name="maxChunk"/> bytes that share their entry's time.
    /// </summary>
    public IEnumerable<(long TimeUs, byte[] Data)> OutputChunks(int maxChunk = 1 << 20) => Chunks(RecordingFiles.Output, OutputIndex(), maxChunk);

    /// <summary>The input as timed chunks, as <see cref="OutputChunks"/>.</summary>
    public IEnumerable<(long TimeUs, byte[] Data)> InputChunks(int maxChunk = 1 << 20) => Chunks(RecordingFiles.Input, InputIndex(), maxChunk);

    private IEnumerable<(long, byte[])> Chunks(string stream, IEnumerable<TimeIndexEntry> index, int maxChunk)
    {
        var length = LengthOf(stream);
        using var file = OpenShared(Prefix + stream);
        TimeIndexEntry? current = null;
        foreach (var next in index.Append(new TimeIndexEntry(length, long.MaxValue)))
        {
            if (current is { } c)
            {
                var end = Math.Min(next.Offset, length);
                for (var at = c.Offset; at < end;)
                {
                    var buffer = new byte[(int)Math.Min(maxChunk, end - at)];
                    file.Position = at;
                    file.ReadExactly(buffer);
                    at += buffer.Length;
                    yield return (c.TimeUs, buffer);
                }
            }
            current = next;
        }
    }

    private long LengthOf(string stream)
    {
        var info = new FileInfo(Prefix + stream);
        return info.Exists ? info.Length : 0;
    }

    private byte[] ReadRange(string stream, long offset, int limit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        using var file = OpenShared(Prefix + stream);
        var count = (int)Math.Clamp(file.Length - offset, 0, limit);
        var buffer = new byte[count];
        file.Position = offset;
        file.ReadExactly(buffer);
        return buffer;
    }

    private static FileStream OpenShared(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16);

    private static IEnumerable<TimeIndexEntry> ReadIndex(string path)
    {
        if (!File.Exists(path))
        {
            yield break;
        }
        using var file = OpenShared(path);
        var buffer = new byte[1 << 16];
        var line = new List<byte>(48);
        int n;
        while ((n = file.Read(buffer)) > 0)
        {
            for (var i = 0; i < n; i++)
            {
                if (buffer[i] != (byte)'\n')
                {
                    line.Add(buffer[i]);
                    continue;
                }
                // A line that does not parse ends the index; one without its '\n' (cut short by a crash, or still
                // being written) is never read, even when what reached the file looks like an entry.
                if (ParseEntry(CollectionsMarshal.AsSpan(line)) is not { } entry)
                {
                    yield break;
                }
                yield return entry;
                line.Clear();
            }
        }
    }

    private static TimeIndexEntry? ParseEntry(ReadOnlySpan<byte> line)
    {
        var space = line.IndexOf((byte)' ');
        return space > 0
            && long.TryParse(line[..space], NumberStyles.None, CultureInfo.InvariantCulture, out var offset)
            && long.TryParse(line[(space + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var time)
            ? new TimeIndexEntry(offset, time)
            : null;
    }
}

/// <summary>Finds recordings: a session named by id in a directory, or by path prefix; and every recording of a directory.</summary>
public static class RecordingLocator
{
    /// <summary>
    /// The prefix for <paramref name="session"/>: an id in <paramref name="directory"/>, or a path prefix (with or without
    /// one of the recording's suffixes, e.g. <c>rec/20250101-120000-ab12.meta.json</c>). Null when there is no such recording.
    /// </summary>
    public static string? Resolve(string session, string directory)
    {
        foreach (var suffix in RecordingFiles.Suffixes)
        {
            if (session.EndsWith(suffix, StringComparison.Ordinal))
            {
                session = session[..^suffix.Length];
                break;
            }
        }
        if (RecordingFiles.IsValidId(session) && File.Exists(Path.Combine(directory, session) + RecordingFiles.Meta))
        {
            return Path.Combine(directory, session);
        }
        return File.Exists(session + RecordingFiles.Meta) ? session : null;
    }

    /// <summary>Every readable recording in <paramref name="directory"/>, oldest first; none when it does not exist.</summary>
    public static IReadOnlyList<RecordingReader> List(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }
        var found = new List<RecordingReader>();
        foreach (var path in Directory.EnumerateFiles(directory, "*" + RecordingFiles.Meta))
        {
            try
            {
                found.Add(RecordingReader.Open(path[..^RecordingFiles.Meta.Length]));
            }
            catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
            {
                // Half-written or foreign file: not a recording we can show.
            }
        }
        return found.OrderBy(r => r.Meta.StartedAt).ThenBy(r => r.Meta.Id, StringComparer.Ordinal).ToList();
    }
}
