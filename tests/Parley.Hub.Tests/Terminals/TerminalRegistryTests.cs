using Microsoft.Extensions.Logging.Abstractions;
using Parley.Hub.Terminals;
using Parley.Terminal.Pty;
using Parley.Terminal.Recording;

namespace Parley.Hub.Tests.Terminals;

/// <summary>The hub's terminal registry over recordings found on disk at start (a hub that stopped under its sessions).</summary>
public sealed class TerminalRegistryTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("parley-registry-test-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private void Record(string id, DateTimeOffset startedAt, bool ended)
    {
        using var writer = RecordingWriter.Create(_directory, new RecordingMeta
        {
            Id = id,
            Name = "sh",
            Command = ["sh"],
            StartedAt = startedAt,
            Cols = 80,
            Rows = 24,
            Pid = 1,
            Owner = "alice",
        });
        writer.AppendOutput("hello\r\n"u8, 1_000);
        if (ended)
        {
            writer.Complete(new TerminalExit(0, null), 2_000);
        }
    }

    [Fact]
    public async Task A_recording_cut_short_counts_its_retention_from_its_last_write_not_its_start()
    {
        var tenDaysAgo = DateTimeOffset.UtcNow.AddDays(-10);
        Record("ended-long-ago", tenDaysAgo, ended: true);
        Record("cut-short", tenDaysAgo, ended: false); // ran for ten days until the hub stopped under it just now
        var options = new TerminalOptions { SweepInterval = TimeSpan.FromDays(1) };
        await using var registry = new TerminalRegistry(options, new HubOptions(), _directory, new HubMetrics(), TimeProvider.System, NullLogger.Instance);

        var cutShort = registry.Find("cut-short");
        Assert.NotNull(cutShort);
        Assert.False(cutShort.Live); // not listed until its owner comes back to it

        // Seven days' retention: the one that ended ten days ago goes; the one written until just now stays.
        Assert.Equal(["ended-long-ago"], registry.Sweep());
        Assert.NotNull(registry.Find("cut-short"));
        Assert.True(File.Exists(Path.Combine(_directory, "cut-short.output")));
        Assert.True(DateTimeOffset.UtcNow - cutShort.LastActivity < TimeSpan.FromMinutes(5), $"last activity {cutShort.LastActivity:O}");
    }
}
