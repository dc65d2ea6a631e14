using System.Globalization;
using System.Text;

namespace Parley.Hub.Fleet;

/// <summary>
/// An instance's <c>output.log</c> (docs/fleet.md): one line per line its process wrote, as
/// <c>&lt;hub receive time, ISO-8601 UTC with ms&gt; &lt;stdout|stderr|hub&gt; &lt;text&gt;</c>. When a line would take
/// the file past <see cref="FleetOptions.LogMaxBytes"/> the file is rotated (<c>output.log</c> → <c>output.log.1</c> →
/// <c>output.log.2</c> …) and only <see cref="FleetOptions.LogFiles"/> files are kept. Thread-safe.
/// </summary>
public sealed class InstanceLogWriter : IDisposable
{
    /// <summary>The current log file's name.</summary>
    public const string FileName = "output.log";

    private readonly object _lock = new();
    private readonly string _path;
    private readonly long _maxBytes;
    private readonly int _files;
    private readonly TimeProvider _time;
    private FileStream? _file;
    private bool _disposed;

    /// <summary>Appends to <c>&lt;directory&gt;/output.log</c> (created mode 0600 when new).</summary>
    public InstanceLogWriter(string directory, long maxBytes, int files, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(directory);
        Directory.CreateDirectory(directory);
        _path = System.IO.Path.Combine(directory, FileName);
        _maxBytes = maxBytes;
        _files = files;
        _time = time;
        Feed = new LogFeed(_path, time);
    }

    /// <summary>The current log file.</summary>
    public string FilePath => _path;

    /// <summary>The log as a live feed for tails (backlog, batched lines, rotations).</summary>
    public LogFeed Feed { get; }

    /// <summary>Appends one line, stamped with the current time. <paramref name="stream"/> is <c>stdout</c>, <c>stderr</c> or <c>hub</c>.</summary>
    public void WriteLine(string stream, string text)
    {
        var line = string.Create(CultureInfo.InvariantCulture, $"{_time.GetUtcNow().UtcDateTime:yyyy-MM-dd'T'HH:mm:ss.fff'Z'} {stream} {text}");
        var bytes = Encoding.UTF8.GetBytes(line + "\n");
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            var file = _file ??= Open();
            if (file.Length > 0 && file.Length + bytes.Length > _maxBytes)
            {
                Rotate();
                file = _file = Open();
                Feed.Rotated();
            }
            Feed.Append(line); // before the write: a feed loading the file now must not see this line twice
            file.Write(bytes);
            file.Flush();
        }
    }

    private FileStream Open()
    {
        var options = new FileStreamOptions { Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.ReadWrite | FileShare.Delete, BufferSize = 0 };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        return new FileStream(_path, options);
    }

    // output.log.(n-1) is dropped, each older file moves up one, output.log becomes output.log.1.
    private void Rotate()
    {
        _file?.Dispose();
        _file = null;
        if (_files == 1)
        {
            File.Delete(_path);
            return;
        }
        File.Delete($"{_path}.{_files - 1}");
        for (var i = _files - 2; i >= 1; i--)
        {
            if (File.Exists($"{_path}.{i}"))
            {
                File.Move($"{_path}.{i}", $"{_path}.{i + 1}", overwrite: true);
            }
        }
        File.Move(_path, $"{_path}.1", overwrite: true);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            _file?.Dispose();
            _file = null;
        }
        Feed.Dispose();
    }
}
