namespace Parley.Bench.Tests;

public sealed class LoopbackGuardTests
{
    [Theory]
    [InlineData("http://127.0.0.1:4000")]
    [InlineData("http://127.1.2.3:80")]
    [InlineData("http://localhost:4000")]
    [InlineData("http://LOCALHOST:4000/")]
    [InlineData("http://[::1]:4000")]
    [InlineData("ws://127.0.0.1:4000/socket")]
    [InlineData("https://127.0.0.1:4443")]
    public void Loopback_urls_are_accepted(string url)
    {
        var uri = LoopbackGuard.Check(url);
        Assert.True(LoopbackGuard.IsLoopback(uri));
    }

    [Theory]
    [InlineData("http://10.0.0.1:4000")]
    [InlineData("http://192.168.1.10:4000")]
    [InlineData("http://0.0.0.0:4000")]
    [InlineData("http://example.com:4000")]
    [InlineData("http://localhost.example.com:4000")]
    [InlineData("http://128.0.0.1:4000")]
    [InlineData("http://[::2]:4000")]
    [InlineData("http://[2001:db8::1]:4000")]
    public void Other_hosts_are_refused_with_the_host_named(string url)
    {
        var ex = Assert.Throws<BenchUsageException>(() => LoopbackGuard.Check(url));
        Assert.Contains("not loopback", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("127.0.0.1:4000")]
    [InlineData("ftp://127.0.0.1/")]
    [InlineData("not a url")]
    public void Non_http_urls_are_refused(string url)
    {
        Assert.Throws<BenchUsageException>(() => LoopbackGuard.Check(url));
    }

    [Fact]
    public void Options_validation_applies_the_guard_too()
    {
        var options = BenchOptions.For(BenchScenario.Fanout) with { Url = new Uri("http://10.1.2.3:4000") };
        Assert.Throws<BenchUsageException>(options.Validate);
    }

    [Fact]
    public async Task The_runner_refuses_before_connecting()
    {
        var options = BenchOptions.For(BenchScenario.Fanout) with { Url = new Uri("http://203.0.113.7:4000") };
        await Assert.ThrowsAsync<BenchUsageException>(() => BenchRunner.RunAsync(options));
    }
}
