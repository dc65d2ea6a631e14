using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Client;
using Parley.Protocol;

namespace Parley.Cli.Commands;

/// <summary>
/// The verbs that talk to a hub as a user (docs/cli.md): <c>whoami</c>, <c>status</c>, <c>send</c>,
/// <c>history</c>, <c>tail</c>. Credentials: <c>--token</c> / <c>PARLEY_TOKEN</c> (an access token or
/// API key), else <c>--name</c> / <c>PARLEY_USER</c> (the user's stored login, renewed with its refresh
/// token or this machine's device key when needed; see <see cref="Sessions"/>), else none (a hub run
/// with <c>--insecure-no-auth</c>).
/// </summary>
internal static class ClientCommands
{
    internal sealed record Common(Option<string?> Server, Option<string?> Token, Option<string?> Name, Option<bool> Json, Option<string?> Profile, Option<string?> KeyFile);

    /// <param name="userFlag">The flag that names the user to log in as: <c>--name</c>, or <c>--user</c> where <c>--name</c> means something else.</param>
    internal static Common CommonOptions(Command command, string userFlag = "--name", bool json = true)
    {
        var common = new Common(
            IdentityCommands.ServerOption(),
            new Option<string?>("--token") { Description = "An access token or API key (env PARLEY_TOKEN)." },
            new Option<string?>(userFlag) { Description = "Log in as this user with this machine's device key (env PARLEY_USER)." },
            new Option<bool>("--json") { Description = "Print JSON (one object per line for streams)." },
            new Option<string?>("--profile") { Description = "Use this profile (parley profile list) instead of the current one." },
            new Option<string?>("--key-file") { Description = "Read the API key from this file (mode 0600), e.g. the one parley agent setup wrote." });
        command.Options.Add(common.Server);
        command.Options.Add(common.Token);
        command.Options.Add(common.Name);
        if (json)
        {
            command.Options.Add(common.Json);
        }
        command.Options.Add(common.Profile);
        command.Options.Add(common.KeyFile);
        return common;
    }

    internal static (Uri Server, Func<CredentialRequest, CancellationToken, ValueTask<string?>>? Credentials, string? Token, string? Name) Resolve(ParseResult parse, Common common)
    {
        // Flags, then environment variables, then the profile (--profile, else the current one).
        var profile = parse.GetValue(common.Profile) is { } named ? Profiles.Select(named) : Profiles.Current();
        var server = IdentityCommands.ServerUrl(parse.GetValue(common.Server), profile?.Server);
        var token = parse.GetValue(common.Token) ?? (parse.GetValue(common.KeyFile) is { } keyFile ? ReadKeyFile(keyFile) : null) ?? Environment.GetEnvironmentVariable("PARLEY_TOKEN");
        var name = parse.GetValue(common.Name) ?? Environment.GetEnvironmentVariable("PARLEY_USER") ?? (token is null ? profile?.User : null);
        if (!string.IsNullOrEmpty(token))
        {
            return (server, (_, _) => ValueTask.FromResult<string?>(token), token, null);
        }
        if (!string.IsNullOrEmpty(name))
        {
            return (server, async (request, ct) =>
            {
                try
                {
                    return await Sessions.AccessTokenAsync(server, name, request.ForceRefresh, ct);
                }
                catch (Exception ex) when (ex is IdentityCommands.CliFailure or IOException or UnauthorizedAccessException)
                {
                    throw new CredentialUnavailableException(ex.Message);
                }
            }, null, name);
        }
        return (server, null, null, null);
    }

    /// <summary>Whether the user named a hub: <c>--server</c>, <c>PARLEY_SERVER</c>, <c>--profile</c> or a current profile.</summary>
    internal static bool IsHubConfigured(ParseResult parse, Common common) =>
        parse.GetValue(common.Server) is not null
        || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("PARLEY_SERVER"))
        || parse.GetValue(common.Profile) is not null
        || Profiles.Current() is not null;

    /// <summary>An API key kept in a file: one line, readable by its owner only (a file others can read is refused).</summary>
    internal static string ReadKeyFile(string path)
    {
        if (!File.Exists(path))
        {
            throw new IdentityCommands.UsageException($"--key-file {path} does not exist (parley agent setup writes one)");
        }
        if (ConfigPaths.ExposureOf(path) is { } exposure)
        {
            throw new UnauthorizedAccessException($"refusing to use the key file: {exposure}");
        }
        return File.ReadAllText(path).Trim();
    }

    public static Command WhoAmI()
    {
        var command = new Command("whoami", "Show who your credential says you are on the hub.");
        var common = CommonOptions(command);
        command.SetAction((parse, ct) => IdentityCommands.RunAsync("whoami", parse.GetValue(common.Json), async () =>
        {
            var (server, credentials, _, _) = Resolve(parse, common);
            var token = credentials is null ? null : await credentials(new CredentialRequest(false), ct);
            var me = await IdentityCommands.GetAsync(server, "/api/whoami", token, ct);
            return (me, $"{me["name"]} ({me["role"]}) on {server}");
        }));
        return command;
    }

    public static Command Status()
    {
        var command = new Command("status", "Check that the hub is reachable: version, connections, round-trip time, and who you are. With a message id: where that direct message is for each recipient.");
        var id = new Argument<string?>("message-id") { Description = "A direct message you sent (dm-…): show its state per recipient.", Arity = ArgumentArity.ZeroOrOne };
        command.Arguments.Add(id);
        var common = CommonOptions(command);
        command.SetAction((parse, ct) => parse.GetValue(id) is { } messageId
            ? DirectMessageCommands.MessageStatusAsync(parse, common, messageId, ct)
            : IdentityCommands.RunAsync("status", parse.GetValue(common.Json), async () =>
        {
            var (server, credentials, _, _) = Resolve(parse, common);
            var clock = Stopwatch.StartNew();
            var health = await IdentityCommands.GetAsync(server, "/health", null, ct);
            health["rtt_ms"] = Math.Round(clock.Elapsed.TotalMilliseconds, 1);
            health["server"] = server.ToString().TrimEnd('/');
            if (credentials is not null)
            {
                var me = await IdentityCommands.GetAsync(server, "/api/whoami", await credentials(new CredentialRequest(false), ct), ct);
                health["name"] = me["name"]?.DeepClone();
                health["role"] = me["role"]?.DeepClone();
            }
            return (health, $"{health["server"]}: {health["status"]}, version {health["version"]}, {health["connections"]} connections, {health["rtt_ms"]} ms" +
                (health["name"] is { } n ? $"; you are {n} ({health["role"]})" : ""));
        }));
        return command;
    }

    public static Command Send()
    {
        var command = new Command("send", "Send a message to a channel and wait for it to be stored (acked). Text '-' reads standard input.");
        var common = CommonOptions(command);
        var channel = new Argument<string>("channel") { Description = "The channel, e.g. room:ops (room: is added when missing)." };
        var text = new Argument<string>("text") { Description = "The message, or - to read standard input." };
        var lines = new Option<bool>("--lines") { Description = "With -: send each line of standard input as its own message." };
        command.Arguments.Add(channel);
        command.Arguments.Add(text);
        command.Options.Add(lines);
        command.SetAction((parse, ct) => RunClientAsync("send", parse, common, async (client, json) =>
        {
            var topic = Topic(parse.GetValue(channel)!);
            var input = parse.GetValue(text)!;
            var bodies = input != "-" ? [input]
                : parse.GetValue(lines) ? ReadLines() : [Console.In.ReadToEnd().TrimEnd('\n')];
            await JoinOrThrowAsync(client, topic, since: null, null, ct);
            foreach (var body in bodies)
            {
                var reply = await client.PushAsync(topic, "msg", new { body }, ct);
                if (!reply.IsOk)
                {
                    throw new IdentityCommands.CliFailure($"{reply.Reason}: {Detail(reply)}");
                }
                var sent = new JsonObject { ["topic"] = topic, ["offset"] = reply.Response.GetProperty("offset").GetInt64(), ["id"] = reply.Response.GetProperty("id").GetString() };
                Console.WriteLine(json ? sent.ToJsonString() : $"sent to {topic} at offset {sent["offset"]}");
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    public static Command History()
    {
        var command = new Command("history", "Print a page of a channel's stored messages, oldest first.");
        var common = CommonOptions(command);
        var channel = new Argument<string>("channel") { Description = "The channel, e.g. room:ops." };
        var limit = new Option<int?>("--limit") { Description = "How many messages (default 50)." };
        var before = new Option<long?>("--before") { Description = "Only messages before this offset (page backwards)." };
        command.Arguments.Add(channel);
        command.Options.Add(limit);
        command.Options.Add(before);
        command.SetAction((parse, ct) => RunClientAsync("history", parse, common, async (client, json) =>
        {
            var topic = Topic(parse.GetValue(channel)!);
            await JoinOrThrowAsync(client, topic, since: null, null, ct);
            var request = new JsonObject { ["limit"] = parse.GetValue(limit) ?? 50 };
            if (parse.GetValue(before) is { } b)
            {
                request["before"] = b;
            }
            var reply = await client.PushAsync(topic, "history", request, ct);
            if (!reply.IsOk)
            {
                throw new IdentityCommands.CliFailure($"{reply.Reason}: {Detail(reply)}");
            }
            foreach (var message in reply.Response.GetProperty("messages").EnumerateArray().Reverse())
            {
                Console.WriteLine(json ? MessageLine(topic, message).ToJsonString() : HumanLine(message));
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    public static Command Tail()
    {
        var command = new Command("tail", "Print a channel's backlog, then its live messages until Ctrl-C; survives hub restarts without losing or repeating a message. Status goes to stderr.");
        var common = CommonOptions(command);
        var channel = new Argument<string>("channel") { Description = "The channel, e.g. room:ops." };
        var since = new Option<string?>("--since") { Description = "Replay messages from this long ago first (30s, 10m, 2h)." };
        var sinceOffset = new Option<long?>("--since-offset") { Description = "Replay messages after this offset first (0 = all retained)." };
        command.Arguments.Add(channel);
        command.Options.Add(since);
        command.Options.Add(sinceOffset);
        command.SetAction((parse, ct) => RunClientAsync("tail", parse, common, async (client, json) =>
        {
            var topic = Topic(parse.GetValue(channel)!);
            JsonObject? joinParams = null;
            if (parse.GetValue(since) is { } ago)
            {
                joinParams = new JsonObject { ["since_ms"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - (long)ParseAgo(ago).TotalMilliseconds };
            }
            return await FollowAsync(client, "tail", topic, parse.GetValue(sinceOffset), joinParams, "msg", _ => { },
                payload => Console.WriteLine(json ? MessageLine(topic, payload).ToJsonString() : HumanLine(payload)), onRejoined: null, ct);
        }));
        return command;
    }

    /// <summary>
    /// Follows one topic until Ctrl-C: joins (trying again while the hub is away), hands the join reply to
    /// <paramref name="onJoined"/>, then every <paramref name="event"/> message to <paramref name="print"/>.
    /// Status lines go to stderr; <paramref name="onRejoined"/> replaces the default rejoin line. Returns the exit code.
    /// </summary>
    internal static Task<int> FollowAsync(ParleyClient client, string verb, string topic, long? since, JsonObject? joinParams, string @event,
        Action<PushReply> onJoined, Action<JsonElement> print, Func<Rejoined, CancellationToken, Task>? onRejoined, CancellationToken ct) =>
        FollowAsync(client, verb, topic, since, joinParams, [@event], onJoined, (_, payload) => print(payload), onRejoined, ct);

    /// <summary>As above, for topics that push several events: <paramref name="handle"/> gets each one of <paramref name="eventNames"/> with its name.</summary>
    internal static async Task<int> FollowAsync(ParleyClient client, string verb, string topic, long? since, JsonObject? joinParams, IReadOnlyCollection<string> eventNames,
        Action<PushReply> onJoined, Action<string, JsonElement> handle, Func<Rejoined, CancellationToken, Task>? onRejoined, CancellationToken ct)
    {
        using var ctrlC = new CtrlC(ct);
        var stop = ctrlC.Source;
        onJoined(await JoinOrThrowAsync(client, topic, since, joinParams, stop.Token, untilJoined: true));
        await Console.Error.WriteLineAsync($"parley {verb}: following {topic} (Ctrl-C to stop)");
        var events = ReportEventsAsync(client, stop, onRejoined);
        try
        {
            await foreach (var message in client.Messages.ReadAllAsync(stop.Token))
            {
                if (message.Topic == topic && eventNames.Contains(message.Event))
                {
                    handle(message.Event, message.Payload);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        return await events;
    }

    // Status lines for a long-running verb; returns the exit code (auth failure ends the stream).
    private static async Task<int> ReportEventsAsync(ParleyClient client, CancellationTokenSource stop, Func<Rejoined, CancellationToken, Task>? onRejoined)
    {
        try
        {
            await foreach (var e in client.Events.ReadAllAsync(stop.Token))
            {
                switch (e)
                {
                    case Reconnecting r:
                        await Console.Error.WriteLineAsync($"parley: connection lost ({r.Reason}); reconnecting (attempt {r.Attempt}) at {r.NextAttemptAt:HH:mm:ss}");
                        break;
                    case Rejoined j when onRejoined is not null:
                        await onRejoined(j, stop.Token);
                        break;
                    case Rejoined { Recovered: false } j:
                        await Console.Error.WriteLineAsync($"parley: rejoined {j.Topic} but the hub could not replay everything missed (recovered: false)");
                        break;
                    case Rejoined j:
                        await Console.Error.WriteLineAsync($"parley: rejoined {j.Topic}; nothing missed");
                        break;
                    case AuthFailed a:
                        await Console.Error.WriteLineAsync($"parley: {a.Reason}");
                        await stop.CancelAsync();
                        return ExitCodes.Authentication;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        return ExitCodes.Ok;
    }

    internal static async Task<int> RunClientAsync(string verb, ParseResult parse, Common common, Func<ParleyClient, bool, Task<int>> run, IReadOnlyList<TimeSpan>? backoff = null)
    {
        try
        {
            var (server, credentials, _, _) = Resolve(parse, common);
            await using var client = new ParleyClient(new ParleyClientOptions
            {
                Server = server,
                Credentials = credentials,
                ClientKind = "cli",
                Backoff = backoff ?? ParleyClientOptions.DefaultBackoff,
            });
            await client.StartAsync();
            return await run(client, parse.GetValue(common.Json));
        }
        catch (IdentityCommands.UsageException ex)
        {
            await Console.Error.WriteLineAsync($"parley {verb}: {SecretRedactor.Redact(ex.Message)}");
            return ExitCodes.Usage;
        }
        catch (ParleyClientException ex) when (ex.Message.Contains("auth_failed", StringComparison.Ordinal))
        {
            await Console.Error.WriteLineAsync($"parley {verb}: {ex.Message}: check --token / PARLEY_TOKEN or log in again");
            return ExitCodes.Authentication;
        }
        catch (ParleyClientException ex)
        {
            await Console.Error.WriteLineAsync($"parley {verb}: {ex.Message}");
            return ex.Message.Contains("within", StringComparison.Ordinal) ? ExitCodes.Timeout : ExitCodes.Failure;
        }
        catch (Exception ex) when (ex is IdentityCommands.CliFailure or IOException or UnauthorizedAccessException)
        {
            await Console.Error.WriteLineAsync($"parley {verb}: {SecretRedactor.Redact(ex.Message)}");
            return ex is IdentityCommands.CliFailure failure ? failure.ExitCode : ExitCodes.Failure;
        }
    }

    internal static async Task<PushReply> JoinOrThrowAsync(ParleyClient client, string topic, long? since, JsonObject? joinParams, CancellationToken ct, bool untilJoined = false)
    {
        PushReply joined;
        while (true)
        {
            try
            {
                joined = await client.JoinAsync(topic, since, joinParams, ct);
                break;
            }
            catch (ParleyClientException ex) when (untilJoined && !ct.IsCancellationRequested && !ex.Message.Contains("auth_failed", StringComparison.Ordinal))
            {
                // The hub went away mid-join (a restart): the client is already redialing; join again once it is back.
                await Console.Error.WriteLineAsync($"parley: joining {topic} failed ({ex.Message}); trying again");
                await Task.Delay(TimeSpan.FromMilliseconds(500), ct);
            }
        }
        if (!joined.IsOk)
        {
            throw new IdentityCommands.CliFailure($"cannot join {topic}: {joined.Reason}{(Detail(joined) is { Length: > 0 } d ? " (" + d + ")" : "")}",
                joined.Reason is "forbidden" or "unauthorized" ? ExitCodes.Authentication : ExitCodes.Failure);
        }
        return joined;
    }

    /// <summary>Joins <paramref name="topic"/>, pushes one event and returns its ok response; a refusal becomes a <see cref="IdentityCommands.CliFailure"/> with its exit code.</summary>
    internal static async Task<JsonElement> RequestAsync(ParleyClient client, string topic, string @event, object payload, CancellationToken ct, bool join = true)
    {
        if (join)
        {
            await JoinOrThrowAsync(client, topic, since: null, null, ct);
        }
        var reply = await client.PushAsync(topic, @event, payload, ct);
        if (reply.IsOk)
        {
            return reply.Response;
        }
        throw new IdentityCommands.CliFailure($"{reply.Reason}: {Detail(reply)}", reply.Reason switch
        {
            "version_conflict" or "already_claimed" => ExitCodes.Conflict,
            "not_found" or "instance_not_found" => ExitCodes.NotFound,
            "forbidden" or "unauthorized" => ExitCodes.Authentication,
            _ => ExitCodes.Failure,
        });
    }

    /// <summary>Prints a JSON object as one line with <c>"type": type</c> added (for --json streams that mix kinds).</summary>
    internal static void PrintTypedLine(JsonElement payload, string type)
    {
        var line = JsonNode.Parse(payload.GetRawText())!.AsObject();
        line["type"] = type;
        Console.WriteLine(line.ToJsonString());
    }

    internal static string Topic(string channel) => channel.Contains(':', StringComparison.Ordinal) ? channel : "room:" + channel;

    internal static string Detail(PushReply reply) =>
        reply.Response.ValueKind == JsonValueKind.Object && reply.Response.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : "";

    private static List<string> ReadLines()
    {
        var lines = new List<string>();
        while (Console.In.ReadLine() is { } line)
        {
            if (line.Length > 0)
            {
                lines.Add(line);
            }
        }
        return lines;
    }

    private static JsonObject MessageLine(string topic, JsonElement message)
    {
        var line = JsonNode.Parse(message.GetRawText())!.AsObject();
        line["topic"] = topic;
        return line;
    }

    private static string HumanLine(JsonElement message) => string.Create(CultureInfo.InvariantCulture,
        $"[{message.GetProperty("offset").GetInt64()}] {DateTimeOffset.FromUnixTimeMilliseconds(message.GetProperty("ts").GetInt64()):HH:mm:ss} {message.GetProperty("from").GetString()}: {message.GetProperty("body").GetString()}");

    private static TimeSpan ParseAgo(string text)
    {
        var unit = text[^1];
        if (text.Length < 2 || !double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) || n < 0)
        {
            throw new IdentityCommands.UsageException($"--since takes a duration like 30s, 10m or 2h, not '{text}'");
        }
        return unit switch
        {
            's' => TimeSpan.FromSeconds(n),
            'm' => TimeSpan.FromMinutes(n),
            'h' => TimeSpan.FromHours(n),
            'd' => TimeSpan.FromDays(n),
            _ => throw new IdentityCommands.UsageException($"--since takes a duration like 30s, 10m or 2h, not '{text}'"),
        };
    }
}
