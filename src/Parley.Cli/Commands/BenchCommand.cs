using System.CommandLine;
using System.CommandLine.Invocation;
using System.Runtime.InteropServices;
using Parley.Bench;

namespace Parley.Cli.Commands;

/// <summary><c>parley bench</c>: the load generator (docs/bench.md).</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var scenario = new Argument<string>("scenario") { Description = "fanout, channels, connections, durable or recovery." };
        var target = new Option<string>("--target") { Description = "The server's wire format: parley, signalr or socketio (default parley).", DefaultValueFactory = _ => "parley" };
        var url = new Option<string>("--url") { Description = "The server's base URL; must be loopback (default http://127.0.0.1:4000).", DefaultValueFactory = _ => "http://127.0.0.1:4000" };
        var serverPid = new Option<int?>("--server-pid") { Description = "The server's process id: adds server CPU per delivery and reads RSS from /proc." };
        var duration = new Option<string>("--duration") { Description = "The measured window, e.g. 10s (default 10s; recovery: publishing after the reconnect).", DefaultValueFactory = _ => "10s" };
        var warmup = new Option<string>("--warmup") { Description = "Load before measuring, e.g. 5s (default 5s; recovery: publishing before the drop).", DefaultValueFactory = _ => "5s" };
        var json = new Option<bool>("--json") { Description = "Print the result as one JSON object (field names: docs/bench.md)." };
        var publishers = new Option<int?>("--publishers") { Description = "Publishing connections (defaults: fanout 1, channels 4, durable 64, recovery 1)." };
        var subscribers = new Option<int?>("--subscribers") { Description = "Subscribers (defaults: fanout 100, recovery 500)." };
        var size = new Option<int?>("--size") { Description = "Message body size in bytes (default 100, at least 32)." };
        var window = new Option<int?>("--window") { Description = "Pushes each publisher keeps in flight (defaults: 64; durable and recovery 16)." };
        var sample = new Option<int?>("--sample") { Description = "Subscribers that measure publish→delivery latency (default 10)." };
        var channels = new Option<int?>("--channels") { Description = "channels scenario: number of channels (default 100)." };
        var perChannel = new Option<int?>("--per-channel") { Description = "channels scenario: subscribers per channel (default 3)." };
        var connections = new Option<int?>("--connections") { Description = "connections scenario: idle connections to open (default 1000)." };
        var away = new Option<string?>("--away") { Description = "recovery: how long subscribers stay disconnected (default 1s)." };
        var rate = new Option<double?>("--rate") { Description = "Pushes per second per publisher, 0 = as fast as the window allows (defaults: 0; recovery 200)." };
        var concurrency = new Option<int?>("--connect-concurrency") { Description = "Connections opened at once (default 64)." };
        var timeout = new Option<string?>("--timeout") { Description = "Bound on each waiting phase: connecting, recovery catch-up (default 60s)." };
        var token = new Option<string?>("--token") { Description = "Access token or API key for a hub that requires one (env PARLEY_TOKEN); parley target only." };

        var command = new Command("bench", "Load-test a hub on this machine (parley, or the signalr/socketio peers) and report throughput, latency, memory and recovery.")
        {
            scenario, target, url, serverPid, duration, warmup, json, publishers, subscribers, size, window, sample,
            channels, perChannel, connections, away, rate, concurrency, timeout, token,
        };
        command.Action = new BenchAction(async (parse, cancellationToken) =>
        {
            if (parse.Errors.Count > 0 || parse.UnmatchedTokens.Count > 0)
            {
                foreach (var error in parse.Errors)
                {
                    await Console.Error.WriteLineAsync($"parley bench: {error.Message}");
                }
                foreach (var token in parse.UnmatchedTokens)
                {
                    await Console.Error.WriteLineAsync($"parley bench: unknown argument '{token}' (see parley bench --help)");
                }
                return ExitCodes.Usage;
            }
            BenchOptions options;
            try
            {
                var kind = BenchOptions.ParseScenario(parse.GetValue(scenario) ?? "");
                var defaults = BenchOptions.For(kind);
                options = defaults with
                {
                    Target = BenchOptions.ParseTarget(parse.GetValue(target) ?? "parley"),
                    Url = LoopbackGuard.Check(parse.GetValue(url) ?? ""),
                    ServerPid = parse.GetValue(serverPid),
                    Duration = DurationParser.Parse(parse.GetValue(duration) ?? "10s", "--duration"),
                    Warmup = DurationParser.Parse(parse.GetValue(warmup) ?? "5s", "--warmup"),
                    Publishers = parse.GetValue(publishers) ?? defaults.Publishers,
                    Subscribers = parse.GetValue(subscribers) ?? defaults.Subscribers,
                    Size = parse.GetValue(size) ?? defaults.Size,
                    Window = parse.GetValue(window) ?? defaults.Window,
                    Sample = parse.GetValue(sample) ?? defaults.Sample,
                    Channels = parse.GetValue(channels) ?? defaults.Channels,
                    PerChannel = parse.GetValue(perChannel) ?? defaults.PerChannel,
                    Connections = parse.GetValue(connections) ?? defaults.Connections,
                    Away = parse.GetValue(away) is { } a ? DurationParser.Parse(a, "--away") : defaults.Away,
                    Rate = parse.GetValue(rate) ?? defaults.Rate,
                    ConnectConcurrency = parse.GetValue(concurrency) ?? defaults.ConnectConcurrency,
                    Timeout = parse.GetValue(timeout) is { } t ? DurationParser.Parse(t, "--timeout") : defaults.Timeout,
                    Token = parse.GetValue(token) ?? Environment.GetEnvironmentVariable("PARLEY_TOKEN"),
                };
                options.Validate();
            }
            catch (BenchUsageException ex)
            {
                await Console.Error.WriteLineAsync($"parley bench: {ex.Message}");
                return ExitCodes.Usage;
            }
            return await RunAsync(options, parse.GetValue(json), cancellationToken);
        });
        return command;
    }

    private static async Task<int> RunAsync(BenchOptions options, bool json, CancellationToken cancellationToken)
    {
        // `parley` leaves signal handling to each verb: Ctrl-C or SIGTERM stops the run early, then it reports.
        using var interrupt = new CtrlC(cancellationToken);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            interrupt.Source.Cancel();
        });
        try
        {
            var result = await BenchRunner.RunAsync(options, Console.Error, interrupt.Token);
            await Console.Out.WriteAsync(json ? result.ToJson() + "\n" : result.ToTable());
            if (result.RateLimited > 0)
            {
                await Console.Error.WriteLineAsync(BenchHints.RateLimit);
            }
            return BenchRunner.ExitCode(result);
        }
        catch (BenchUsageException ex)
        {
            await Console.Error.WriteLineAsync($"parley bench: {ex.Message}");
            return ExitCodes.Usage;
        }
        catch (BenchRunException ex)
        {
            await Console.Error.WriteLineAsync($"parley bench: {ex.Message}");
            return ExitCodes.Failure;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await Console.Error.WriteLineAsync($"parley bench: the run failed unexpectedly: {ex}");
            return ExitCodes.Failure;
        }
    }

    /// <summary>
    /// Runs even when the command line has errors, so a bad flag value exits with 2 (usage) like every
    /// other usage error of <c>parley bench</c>, instead of the parser's default 1.
    /// </summary>
    private sealed class BenchAction(Func<ParseResult, CancellationToken, Task<int>> run) : AsynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override Task<int> InvokeAsync(ParseResult parseResult, CancellationToken cancellationToken = default) =>
            run(parseResult, cancellationToken);
    }
}
