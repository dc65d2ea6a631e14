using System.Globalization;
using System.Text;
using System.Text.Json;
using Parley.Terminal.Pty;

namespace Parley.Terminal.Recording;

/// <summary>
/// Writes a recording (docs/terminal-recordings.md): the raw output and input bytes, their time indexes and
/// the meta file. Each append goes to the file at once (one write per chunk, no buffer held back), so when an
/// append returns, a <see cref="RecordingReader"/> can read those bytes. Files are created 0600: terminals
/// carry secrets (<c>.input</c> holds what was typed at password prompts too).
/// </summary>
/// <remarks>
/// Output and input are independent: one caller at a time per stream (they may run concurrently with each
/// other). <see cref="AddResize"/> and <see cref="Complete"/> may come from any thread.
/// </remarks>
public sealed class RecordingWriter : IDisposable
{
    /// <summary>A chunk that starts this long (µs) after the previous index entry gets an entry of its own.</summary>
    public const long IndexIntervalUs = 10_000;

    private readonly RecordedStream _output;
    private readonly RecordedStream _input;
    private readonly RecordingMeta _meta;
    private readonly Lock _metaLock = new();

    private RecordingWriter(string prefix, RecordingMeta meta, RecordedStream output, RecordedStream input)
    {
        Prefix = prefix;
        _meta = meta;
        _output = output;
        _input = input;
    }

    /// <summary>The path prefix every file name starts with: <c>&lt;dir&gt;/&lt;id&gt;</c>.</summary>
    public string Prefix { get; }

    /// <summary>Bytes of output recorded so far (the offset of the next output byte).</summary>
    public long OutputLength => _output.Length;

    /// <summary>Bytes of input recorded so far.</summary>
    public long InputLength => _input.Length;

    /// <summary>A copy of the meta as it is now.</summary>
    public RecordingMeta Meta
    {
        get
        {
            lock (_metaLock)
            {
                return _meta.Clone();
            }
        }
    }

    /// <summary>
    /// Creates the recording <c>&lt;directory&gt;/&lt;meta.Id&gt;.*</c> (the directory 0700 when new) and writes its meta.
    /// Throws <see cref="IOException"/> when a recording of that id exists.
    /// </summary>
    public static RecordingWriter Create(string directory, RecordingMeta meta)
    {
        if (!RecordingFiles.IsValidId(meta.Id))
        {
            throw new ArgumentException($"invalid session id '{meta.Id}' (1-64 of a-z 0-9 _ -)", nameof(meta));
        }
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        var prefix = Path.Combine(directory, meta.Id);
        // The meta file is claimed first (CreateNew): of two writers picking the same id, one fails before touching data files.
        using (CreatePrivate(prefix + RecordingFiles.Meta))
        {
        }
        var output = RecordedStream.Create(prefix + RecordingFiles.Output);
        var input = RecordedStream.Create(prefix + RecordingFiles.Input);
        var writer = new RecordingWriter(prefix, meta, output, input);
        writer.SaveMeta();
        return writer;
    }

    /// <summary>
    /// Opens an existing, not yet completed recording at <paramref name="prefix"/> to append to it (a hub that
    /// restarted, taking a session's stream up where its copy ends). Throws when it is missing or completed.
    /// </summary>
    public static RecordingWriter OpenForAppend(string prefix)
    {
        var reader = RecordingReader.Open(prefix);
        if (reader.Meta.EndedAt is not null)
        {
            throw new InvalidOperationException($"recording {prefix} is complete");
        }
        var output = RecordedStream.OpenForAppend(prefix + RecordingFiles.Output, reader.OutputIndex());
        var input = RecordedStream.OpenForAppend(prefix + RecordingFiles.Input, reader.InputIndex());
        return new RecordingWriter(prefix, reader.Meta, output, input);
    }

    /// <summary>Appends output that arrived <paramref name="timeUs"/> µs after the start; returns its offset.</summary>
    public long AppendOutput(ReadOnlySpan<byte> data, long timeUs) => _output.Append(data, timeUs);

    /// <summary>Appends input that arrived <paramref name="timeUs"/> µs after the start; returns its offset.</summary>
    public long AppendInput(ReadOnlySpan<byte> data, long timeUs) => _input.Append(data, timeUs);

    // A full disk is an IOException; a file size limit (RLIMIT_FSIZE, EFBIG) surfaces as ArgumentOutOfRangeException.
    private static bool IsWriteFailure(Exception e) => e is IOException or UnauthorizedAccessException or ArgumentOutOfRangeException;

    private static RecordingUnavailableException Unavailable(string path, Exception e) =>
        new($"cannot write {path}: {(e is ArgumentOutOfRangeException ? "the file size limit was reached" : e.Message)}", e);

    /// <summary>Records a size change and rewrites the meta.</summary>
    public void AddResize(long timeUs, int cols, int rows)
    {
        lock (_metaLock)
        {
            _meta.Resizes.Add(new RecordedResize(timeUs, cols, rows));
            try
            {
                SaveMeta();
            }
            catch (Exception e) when (IsWriteFailure(e))
            {
                throw Unavailable(Prefix + RecordingFiles.Meta, e);
            }
        }
    }

    /// <summary>Ends the recording: final index entries, the exit and end time in the meta. Appends after this throw.</summary>
    public void Complete(TerminalExit exit, long timeUs)
    {
        _output.Close(timeUs);
        _input.Close(timeUs);
        lock (_metaLock)
        {
            _meta.EndedAt = _meta.StartedAt.AddTicks(timeUs * 10);
            _meta.DurationUs = timeUs;
            _meta.ExitCode = exit.ExitCode;
            _meta.Signal = exit.Signal;
            _meta.OutputBytes = _output.Length;
            _meta.InputBytes = _input.Length;
            SaveMeta();
        }
    }

    /// <summary>Closes the files without completing the meta (a recording cut short).</summary>
    public void Dispose()
    {
        _output.Dispose();
        _input.Dispose();
    }

    private void SaveMeta()
    {
        var path = Prefix + RecordingFiles.Meta;
        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        using (var file = CreatePrivate(temporary, FileMode.Create))
        {
            JsonSerializer.Serialize(file, _meta, RecordingMeta.Json);
            file.WriteByte((byte)'\n');
        }
        File.Move(temporary, path, overwrite: true);
    }

    internal static FileStream CreatePrivate(string path, FileMode mode = FileMode.CreateNew)
    {
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write, BufferSize = 0 };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        return new FileStream(path, options);
    }

    /// <summary>One raw stream and its time index.</summary>
    private sealed class RecordedStream : IDisposable
    {
        private readonly FileStream _data;
        private readonly FileStream _index;
        private readonly byte[] _line = new byte[48];
        private long _lastEntryUs = long.MinValue;
        private long _length;
        private bool _closed;

        private RecordedStream(FileStream data, FileStream index)
        {
            _data = data;
            _index = index;
        }

        public long Length => Volatile.Read(ref _length);

        public static RecordedStream Create(string path) =>
            new(CreatePrivate(path), CreatePrivate(path + RecordingFiles.Index));

        public static RecordedStream OpenForAppend(string path, IEnumerable<TimeIndexEntry> index)
        {
            var last = index.LastOrDefault();
            DropUnfinishedLine(path + RecordingFiles.Index);
            var stream = new RecordedStream(CreatePrivate(path, FileMode.Append), CreatePrivate(path + RecordingFiles.Index, FileMode.Append));
            stream._length = stream._data.Length;
            stream._lastEntryUs = last == default ? long.MinValue : last.TimeUs;
            return stream;
        }

        // A recorder that died mid-line left an index line without its '\n': appending after it would glue the next
        // entry onto it and readers would stop there. Readers never read that fragment, so it goes.
        private static void DropUnfinishedLine(string indexPath)
        {
            if (!File.Exists(indexPath))
            {
                return;
            }
            using var file = new FileStream(indexPath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            var end = file.Length;
            // A line is at most 40 bytes ("<long> <long>\n"): the last 64 hold the last '\n' of any index.
            var tail = new byte[Math.Min(end, 64)];
            file.Position = end - tail.Length;
            file.ReadExactly(tail);
            var newline = Array.LastIndexOf(tail, (byte)'\n');
            var keep = newline >= 0 ? end - tail.Length + newline + 1 : tail.Length == end ? 0 : end;
            if (keep < end)
            {
                file.SetLength(keep);
            }
        }

        public long Append(ReadOnlySpan<byte> data, long timeUs)
        {
            ObjectDisposedException.ThrowIf(_closed, this);
            var offset = _length;
            if (data.IsEmpty)
            {
                return offset;
            }
            // Times never go backwards in the index, whatever clock the caller read.
            timeUs = Math.Max(timeUs, _lastEntryUs == long.MinValue ? 0 : _lastEntryUs);
            try
            {
                if (_lastEntryUs == long.MinValue || timeUs - _lastEntryUs >= IndexIntervalUs)
                {
                    WriteEntry(offset, timeUs);
                }
                _data.Write(data);
            }
            catch (Exception e) when (IsWriteFailure(e))
            {
                throw Unavailable(_data.Name, e);
            }
            Volatile.Write(ref _length, offset + data.Length);
            return offset;
        }

        public void Close(long timeUs)
        {
            if (_closed)
            {
                return;
            }
            WriteEntry(_length, Math.Max(timeUs, _lastEntryUs == long.MinValue ? 0 : _lastEntryUs));
            _closed = true;
            Dispose();
        }

        private void WriteEntry(long offset, long timeUs)
        {
            var n = Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{offset} {timeUs}\n"), _line);
            _index.Write(_line, 0, n);
            _lastEntryUs = timeUs;
        }

        public void Dispose()
        {
            _closed = true;
            _data.Dispose();
            _index.Dispose();
        }
    }
}
