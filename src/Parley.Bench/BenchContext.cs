using System.Net;
using Parley.Bench.Protocols;

namespace Parley.Bench;

/// <summary>What every connection of one run shares: options, the protocol adapter, the HTTP stack, errors and hints.</summary>
internal sealed class BenchContext : IDisposable
{
    private int _rateLimitHintShown;

    public BenchContext(BenchOptions options, TextWriter progress)
    {
        Options = options;
        Progress = progress;
        Protocol = Create(options.Target);
        SocketUri = Protocol.SocketUri(options.Url);
        if (options.Token is { Length: > 0 } token && options.Target == BenchTarget.Parley)
        {
            SocketUri = new Uri(SocketUri + "&token=" + Uri.EscapeDataString(token));
        }
        // One handler for every socket; never a proxy (loopback only, and an http_proxy variable must not reroute the bench).
        Http = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            Proxy = null,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        }, disposeHandler: true);
    }

    public BenchOptions Options { get; }
    public IBenchProtocol Protocol { get; }
    public Uri SocketUri { get; }
    public HttpMessageInvoker Http { get; }
    public TextWriter Progress { get; }
    public ErrorLog Errors { get; } = new();

    private long _rateLimited;

    /// <summary>Pushes the server refused with <c>rate_limited</c>.</summary>
    public long RateLimited => Interlocked.Read(ref _rateLimited);

    /// <summary>Counts a <c>rate_limited</c> reply and, the first time, says how to start the hub for benchmarking.</summary>
    public void OnRateLimited()
    {
        Interlocked.Increment(ref _rateLimited);
        if (Interlocked.Exchange(ref _rateLimitHintShown, 1) == 0)
        {
            Progress.WriteLine(RateLimitHint);
        }
    }

    /// <summary>The hint printed when the hub rate-limits the bench.</summary>
    public const string RateLimitHint = BenchHints.RateLimit;

    public static IBenchProtocol Create(BenchTarget target) => target switch
    {
        BenchTarget.Parley => new ParleyProtocol(),
        BenchTarget.SignalR => new SignalRProtocol(),
        BenchTarget.SocketIo => new SocketIoProtocol(),
        _ => throw new ArgumentOutOfRangeException(nameof(target)),
    };

    public void Dispose() => Http.Dispose();
}

/// <summary>Hints the bench prints.</summary>
public static class BenchHints
{
    /// <summary>Printed when the hub answers <c>rate_limited</c>.</summary>
    public const string RateLimit =
        "parley bench: the hub answered rate_limited: it limits pushes per socket (100/s by default), so these numbers measure the limiter. " +
        "Start the hub for benchmarking with PARLEY_HUB__PUSHESPERSECOND=1000000 PARLEY_HUB__PUSHBURST=1000000.";

    /// <summary>Printed when the hub refuses the upgrade for lack of a credential.</summary>
    public const string Credential =
        "the hub requires a credential: pass --token with an API key (a fresh hub writes one to <data dir>/initial-owner-key) or start the hub with --insecure-no-auth";
}
