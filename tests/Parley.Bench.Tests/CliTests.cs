using Parley.Cli;

namespace Parley.Bench.Tests;

/// <summary><c>parley bench</c> usage errors exit with 2 before connecting anywhere.</summary>
[Collection(nameof(CliTests))]
public sealed class CliTests
{
    [Theory]
    [InlineData("bench", "fanout", "--url", "http://10.0.0.1:4000")]
    [InlineData("bench", "fanout", "--url", "http://example.com:4000")]
    [InlineData("bench", "recovery", "--target", "signalr", "--url", "http://127.0.0.1:1")]
    [InlineData("bench", "nonsense", "--url", "http://127.0.0.1:1")]
    [InlineData("bench", "fanout", "--target", "mqtt", "--url", "http://127.0.0.1:1")]
    [InlineData("bench", "fanout", "--subscribers", "many", "--url", "http://127.0.0.1:1")]
    [InlineData("bench", "fanout", "--subscribers", "0", "--url", "http://127.0.0.1:1")]
    [InlineData("bench", "fanout", "--size", "8", "--url", "http://127.0.0.1:1")]
    [InlineData("bench", "fanout", "--duration", "soon", "--url", "http://127.0.0.1:1")]
    [InlineData("bench", "fanout", "--no-such-flag", "--url", "http://127.0.0.1:1")]
    [InlineData("bench", "channels", "--channels", "2", "--publishers", "3", "--url", "http://127.0.0.1:1")]
    public async Task Usage_errors_exit_2(params string[] args)
    {
        Assert.Equal(ExitCodes.Usage, await Program.Main(args).WaitAsync(TimeSpan.FromSeconds(20)));
    }

    [Fact]
    public async Task A_run_that_cannot_connect_exits_1()
    {
        var args = new[] { "bench", "fanout", "--url", "http://127.0.0.1:1", "--subscribers", "1", "--warmup", "0s", "--duration", "100ms", "--json" };
        Assert.Equal(ExitCodes.Failure, await Program.Main(args).WaitAsync(TimeSpan.FromSeconds(20)));
    }

    [Theory]
    [InlineData("10s", 10.0)]
    [InlineData("500ms", 0.5)]
    [InlineData("1.5s", 1.5)]
    [InlineData("2m", 120.0)]
    [InlineData("3", 3.0)]
    public void Durations_parse(string text, double seconds)
    {
        Assert.Equal(TimeSpan.FromSeconds(seconds), DurationParser.Parse(text, "--duration"));
    }
}
