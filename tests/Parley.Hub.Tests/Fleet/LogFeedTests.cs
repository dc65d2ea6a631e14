using Parley.Hub.Fleet;

namespace Parley.Hub.Tests.Fleet;

/// <summary>The live log feed behind log tails: backlog from the file, batches, rotations, nothing doubled.</summary>
public sealed class LogFeedTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "parley-logfeed-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static async Task<T> WithinAsync<T>(TaskCompletionSource<T> source) => await source.Task.WaitAsync(TimeSpan.FromSeconds(5));

    [Fact]
    public async Task A_watcher_gets_the_files_newest_lines_then_each_new_line_once_in_a_batch()
    {
        Directory.CreateDirectory(_directory);
        using (var writer = new InstanceLogWriter(_directory, 1 << 20, 3, TimeProvider.System))
        {
            writer.WriteLine("stdout", "before-1");
            writer.WriteLine("stdout", "before-2");
        }
        // A restarted hub: a new writer over the same file; its feed loads the file once.
        using var again = new InstanceLogWriter(_directory, 1 << 20, 3, TimeProvider.System);
        again.WriteLine("hub", "started pid 42");

        var backlog = new TaskCompletionSource<IReadOnlyList<LogLine>>();
        var batch = new TaskCompletionSource<IReadOnlyList<LogLine>>();
        using var watch = again.Feed.Watch(10, lines => backlog.TrySetResult(lines), lines => batch.TrySetResult(lines), () => { });
        var old = await WithinAsync(backlog);
        Assert.Equal(3, old.Count); // not doubled by the load
        Assert.EndsWith("stdout before-1", old[0].Text, StringComparison.Ordinal);
        Assert.EndsWith("hub started pid 42", old[2].Text, StringComparison.Ordinal);

        again.WriteLine("stdout", "live-1");
        again.WriteLine("stderr", "live-2");
        var fresh = await WithinAsync(batch);
        Assert.Equal(["stdout live-1", "stderr live-2"], fresh.Select(l => l.Text[(l.Text.IndexOf(' ', StringComparison.Ordinal) + 1)..]));
        Assert.Equal([old[^1].Seq + 1, old[^1].Seq + 2], fresh.Select(l => l.Seq));
        Assert.Equal(2, again.Feed.Tail(2).Count);
    }

    [Fact]
    public async Task A_rotation_flushes_what_was_gathered_then_says_rotated()
    {
        using var writer = new InstanceLogWriter(_directory, 1024, 2, TimeProvider.System);
        var events = new List<string>();
        var rotated = new TaskCompletionSource();
        using var watch = writer.Feed.Watch(0, _ => { }, lines => { lock (events) { events.AddRange(lines.Select(_ => "line")); } }, () =>
        {
            lock (events)
            {
                events.Add("rotated");
            }
            rotated.TrySetResult();
        });
        for (var i = 0; i < 40; i++)
        {
            writer.WriteLine("stdout", new string('x', 40)); // ~70 bytes a line: the 1 KiB file rotates
        }
        await rotated.Task.WaitAsync(TimeSpan.FromSeconds(5));
        lock (events)
        {
            var at = events.IndexOf("rotated");
            Assert.True(at > 0, "lines written before the rotation arrive before it");
        }
        Assert.True(File.Exists(Path.Combine(_directory, "output.log.1")));
    }
}
