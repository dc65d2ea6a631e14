using System.Text;
using Parley.Terminal.Pty;
using Parley.Terminal.Recording;

namespace Parley.Terminal.Tests;

/// <summary>A <see cref="TerminalSession"/> recording into its own temporary directory, with bounded waits.</summary>
internal sealed class RecordedRun : IDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private readonly MemoryStream _local = new();

    private RecordedRun(string directory) => Directory = directory;

    public string Directory { get; }

    public TerminalSession Session { get; private set; } = null!;

    public string Prefix => Session.Prefix;

    /// <summary>What the session handed to its local terminal.</summary>
    public byte[] LocalOutput
    {
        get
        {
            lock (_local)
            {
                return _local.ToArray();
            }
        }
    }

    public static RecordedRun Start(params string[] command) => Start(command, cols: 80, rows: 24);

    public static RecordedRun Start(IReadOnlyList<string> command, int cols, int rows)
    {
        var run = new RecordedRun(System.IO.Directory.CreateTempSubdirectory("parley-rec-test-").FullName);
        run.Session = TerminalSession.Start(new TerminalSessionOptions
        {
            Command = command,
            RecordingDirectory = Path.Combine(run.Directory, "rec"),
            Cols = cols,
            Rows = rows,
            LocalOutput = data =>
            {
                lock (run._local)
                {
                    run._local.Write(data);
                }
            },
        });
        return run;
    }

    public async Task<TerminalExit> ExitAsync() => await Session.Completion.WaitAsync(Timeout);

    public RecordingReader Open() => RecordingReader.Open(Prefix);

    public byte[] OutputFile => File.ReadAllBytes(Prefix + RecordingFiles.Output);

    public byte[] InputFile => File.ReadAllBytes(Prefix + RecordingFiles.Input);

    /// <summary>Waits (bounded) until the recorded output contains <paramref name="text"/>.</summary>
    public void WaitForOutput(string text)
    {
        var needle = Encoding.UTF8.GetBytes(text);
        var deadline = DateTime.UtcNow + Timeout;
        while (OutputFile.AsSpan().IndexOf(needle) < 0)
        {
            if (DateTime.UtcNow > deadline || Session.Completion.IsCompleted)
            {
                throw new TimeoutException($"'{text}' not in the recorded output: {Encoding.UTF8.GetString(OutputFile)}");
            }
            Thread.Sleep(20);
        }
    }

    public void Dispose()
    {
        Session?.Dispose();
        try
        {
            Session?.Completion.Wait(Timeout);
        }
        catch (AggregateException)
        {
            // A session that failed has nothing left to wait for.
        }
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Asserts the index is well formed for a stream of <paramref name="length"/> bytes: starts at 0, never goes back, ends at the length.</summary>
    public static void AssertIndexWellFormed(IReadOnlyList<TimeIndexEntry> index, long length, bool complete = true)
    {
        Assert.NotEmpty(index);
        if (length > 0)
        {
            Assert.Equal(0, index[0].Offset);
        }
        Assert.True(index[0].TimeUs >= 0, $"first time {index[0].TimeUs}");
        for (var i = 1; i < index.Count; i++)
        {
            Assert.True(index[i].Offset >= index[i - 1].Offset, $"offset goes back at entry {i}: {index[i - 1]} then {index[i]}");
            Assert.True(index[i].TimeUs >= index[i - 1].TimeUs, $"time goes back at entry {i}: {index[i - 1]} then {index[i]}");
        }
        Assert.All(index, e => Assert.InRange(e.Offset, 0, length));
        if (complete)
        {
            Assert.Equal(length, index[^1].Offset);
        }
    }
}
