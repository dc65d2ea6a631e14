namespace Parley.Bench;

/// <summary>The bench scenarios (docs/bench.md).</summary>
public enum BenchScenario
{
    /// <summary>P publishers, S subscribers, one channel: deliveries/s and publish→delivery latency.</summary>
    Fanout,

    /// <summary>N channels with K subscribers each, P publishers spread round-robin.</summary>
    Channels,

    /// <summary>C idle joined connections: connect rate and server memory per connection.</summary>
    Connections,

    /// <summary>P publishers on distinct channels: acked appends/s and push→ack latency.</summary>
    Durable,

    /// <summary>C subscribers drop and rejoin with <c>since</c>: time to recover, lost and duplicate messages (parley only).</summary>
    Recovery,
}

/// <summary>The server under test, i.e. which wire format the adapters speak.</summary>
public enum BenchTarget
{
    /// <summary>Parley: Phoenix Channels V2 JSON at <c>/socket/websocket?vsn=2.0.0</c>.</summary>
    Parley,

    /// <summary>The ASP.NET Core SignalR peer: JSON hub protocol at <c>/hub</c>.</summary>
    SignalR,

    /// <summary>The socket.io 4 peer: Engine.IO v4 over WebSocket at <c>/socket.io/</c>.</summary>
    SocketIo,
}

/// <summary>
/// Everything a run needs. <see cref="For"/> fills in the defaults of a scenario; every count and time is
/// bounded by <see cref="Validate"/>.
/// </summary>
public sealed record BenchOptions
{
    /// <summary>Which scenario to run.</summary>
    public required BenchScenario Scenario { get; init; }

    /// <summary>Which server (wire format) to talk to. Default parley.</summary>
    public BenchTarget Target { get; init; } = BenchTarget.Parley;

    /// <summary>The server's base URL; only its scheme, host and port are used. Must be loopback.</summary>
    public Uri Url { get; init; } = new("http://127.0.0.1:4000");

    /// <summary>The server's process id, for CPU (<c>/proc/PID/stat</c>) and RSS (<c>/proc/PID/status</c>); null: no CPU figures, RSS from <c>/metrics</c> (parley only).</summary>
    public int? ServerPid { get; init; }

    /// <summary>The measured window. Default 10 s. For recovery: how long publishing goes on after the reconnect starts.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Load before the measured window (not counted). Default 5 s. For recovery: publishing before the drop; for connections: a warm-up batch is opened and closed first when non-zero.</summary>
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Publishing connections. Defaults: fanout 1, channels 4, durable 64, recovery 1.</summary>
    public int Publishers { get; init; } = 1;

    /// <summary>Subscribing connections: fanout default 100, recovery default 500 (channels use <see cref="Channels"/> × <see cref="PerChannel"/>).</summary>
    public int Subscribers { get; init; } = 100;

    /// <summary>Message body size in bytes (ASCII, marker and timestamp first). Default 100, at least 32.</summary>
    public int Size { get; init; } = 100;

    /// <summary>Pushes each publisher keeps in flight (sent, not yet acked). Defaults: 64; durable and recovery 16.</summary>
    public int Window { get; init; } = 64;

    /// <summary>Subscribers that record publish→delivery latency. Default 10.</summary>
    public int Sample { get; init; } = 10;

    /// <summary>Channels in the channels scenario. Default 100.</summary>
    public int Channels { get; init; } = 100;

    /// <summary>Subscribers per channel in the channels scenario. Default 3.</summary>
    public int PerChannel { get; init; } = 3;

    /// <summary>Idle connections in the connections scenario. Default 1,000.</summary>
    public int Connections { get; init; } = 1000;

    /// <summary>Recovery: how long the subscribers stay away before reconnecting. Default 1 s.</summary>
    public TimeSpan Away { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Pushes per second per publisher; 0 means as fast as the window allows. Defaults: 0; recovery 200.</summary>
    public double Rate { get; init; }

    /// <summary>Connections opened at once while connecting. Default 64.</summary>
    public int ConnectConcurrency { get; init; } = 64;

    /// <summary>A credential for hubs that require one (an access token or API key); Parley target only.</summary>
    public string? Token { get; init; }

    /// <summary>Bound on each waiting phase (connecting and joining, draining acks, recovery catch-up). Default 60 s.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Prefix of channel names; a random suffix keeps runs apart. Default <c>bench</c>.</summary>
    public string ChannelPrefix { get; init; } = "bench";

    /// <summary>The defaults of <paramref name="scenario"/>.</summary>
    public static BenchOptions For(BenchScenario scenario) => scenario switch
    {
        BenchScenario.Fanout => new BenchOptions { Scenario = scenario },
        BenchScenario.Channels => new BenchOptions { Scenario = scenario, Publishers = 4, Subscribers = 0 },
        BenchScenario.Connections => new BenchOptions { Scenario = scenario, Publishers = 0, Subscribers = 0 },
        BenchScenario.Durable => new BenchOptions { Scenario = scenario, Publishers = 64, Subscribers = 0, Window = 16, Sample = 0 },
        BenchScenario.Recovery => new BenchOptions { Scenario = scenario, Publishers = 1, Subscribers = 500, Window = 16, Rate = 200, Sample = 0 },
        _ => throw new ArgumentOutOfRangeException(nameof(scenario)),
    };

    /// <summary>The shortest body that still holds the marker and a timestamp.</summary>
    public const int MinSize = 32;

    /// <summary>Throws <see cref="BenchUsageException"/> naming the first flag out of bounds.</summary>
    public void Validate()
    {
        if (!LoopbackGuard.IsLoopback(Url))
        {
            LoopbackGuard.Check(Url.ToString());
        }
        Check(Duration > TimeSpan.Zero && Duration <= TimeSpan.FromHours(1), "--duration must be more than 0 and at most 1h");
        Check(Warmup >= TimeSpan.Zero && Warmup <= TimeSpan.FromHours(1), "--warmup must be between 0 and 1h");
        Check(Size is >= MinSize and <= 1024 * 1024, $"--size must be between {MinSize} and 1048576 bytes");
        Check(Window is >= 1 and <= 4096, "--window must be between 1 and 4096");
        Check(Sample is >= 0 and <= 100_000, "--sample must be between 0 and 100000");
        Check(Rate is >= 0 and <= 10_000_000 && !double.IsNaN(Rate), "--rate must be between 0 (unlimited) and 10000000 pushes/s");
        Check(ConnectConcurrency is >= 1 and <= 10_000, "connect concurrency must be between 1 and 10000");
        Check(Timeout >= TimeSpan.FromSeconds(1) && Timeout <= TimeSpan.FromHours(1), "timeout must be between 1s and 1h");
        Check(ServerPid is null or > 0, "--server-pid must be a positive process id");
        switch (Scenario)
        {
            case BenchScenario.Fanout:
                Check(Publishers is >= 1 and <= 10_000, "--publishers must be between 1 and 10000");
                Check(Subscribers is >= 1 and <= 100_000, "--subscribers must be between 1 and 100000");
                break;
            case BenchScenario.Channels:
                Check(Channels is >= 1 and <= 100_000, "--channels must be between 1 and 100000");
                Check(PerChannel is >= 1 and <= 10_000, "--per-channel must be between 1 and 10000");
                Check((long)Channels * PerChannel <= 100_000, "--channels × --per-channel must be at most 100000 subscribers");
                Check(Publishers is >= 1 && Publishers <= Channels, "--publishers must be between 1 and --channels (each publisher needs a channel)");
                break;
            case BenchScenario.Connections:
                Check(Connections is >= 1 and <= 100_000, "--connections must be between 1 and 100000");
                break;
            case BenchScenario.Durable:
                Check(Publishers is >= 1 and <= 10_000, "--publishers must be between 1 and 10000");
                break;
            case BenchScenario.Recovery:
                if (Target != BenchTarget.Parley)
                {
                    throw new BenchUsageException($"the recovery scenario needs a hub with durable history and since-recovery; only --target parley has it, not {Target.ToString().ToLowerInvariant()}");
                }
                Check(Publishers == 1, "--publishers must be 1 for recovery (one publisher defines the offsets to recover)");
                Check(Subscribers is >= 1 and <= 100_000, "--subscribers must be between 1 and 100000");
                Check(Away >= TimeSpan.Zero && Away <= TimeSpan.FromMinutes(5), "--away must be between 0 and 5m");
                break;
        }
    }

    /// <summary>The target's name as typed on the command line.</summary>
    public static string TargetName(BenchTarget target) => target switch
    {
        BenchTarget.Parley => "parley",
        BenchTarget.SignalR => "signalr",
        BenchTarget.SocketIo => "socketio",
        _ => target.ToString().ToLowerInvariant(),
    };

    /// <summary>Parses a target name (parley, signalr, socketio; socket.io is accepted too).</summary>
    public static BenchTarget ParseTarget(string text) => text.Trim().ToLowerInvariant() switch
    {
        "parley" => BenchTarget.Parley,
        "signalr" => BenchTarget.SignalR,
        "socketio" or "socket.io" => BenchTarget.SocketIo,
        _ => throw new BenchUsageException($"--target '{text}' is not one of parley, signalr, socketio"),
    };

    /// <summary>Parses a scenario name.</summary>
    public static BenchScenario ParseScenario(string text) => text.Trim().ToLowerInvariant() switch
    {
        "fanout" => BenchScenario.Fanout,
        "channels" => BenchScenario.Channels,
        "connections" => BenchScenario.Connections,
        "durable" => BenchScenario.Durable,
        "recovery" => BenchScenario.Recovery,
        _ => throw new BenchUsageException($"scenario '{text}' is not one of fanout, channels, connections, durable, recovery"),
    };

    private static void Check(bool ok, string message)
    {
        if (!ok)
        {
            throw new BenchUsageException(message);
        }
    }
}
