using System.CommandLine;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Client;
using Parley.Protocol;
using static Parley.Cli.Commands.DoctorCommand;

namespace Parley.Cli.Commands;

/// <summary>
/// <c>parley agent setup</c> and <c>parley agent doctor</c> (docs/agents.md §Setup): wire a coding agent's
/// MCP configuration for one project to <c>parley mcp</c> with an API key of its own, and check that chain.
/// The key lives in <c>$XDG_CONFIG_HOME/parley/agent-keys/</c> (mode 0600); the project's files only name it.
/// </summary>
internal static class AgentCommands
{
    private const string ServerName = "parley";
    private const string CodexBegin = "# >>> parley (written by parley agent setup; parley agent setup --help) >>>";
    private const string CodexEnd = "# <<< parley <<<";

    public static Command Create()
    {
        var agent = new Command("agent", "Set up and check a coding agent's connection to the hub (parley mcp).");
        agent.Subcommands.Add(Setup());
        agent.Subcommands.Add(Doctor());
        return agent;
    }

    private sealed record Target(Option<string?> Client, Option<string?> Project);

    private static Target TargetOptions(Command command)
    {
        var target = new Target(
            new Option<string?>("--client") { Description = "claude-code (default: .mcp.json and a prompt hook), codex (.codex/config.toml) or generic (writes nothing, prints the entry)." },
            new Option<string?>("--project") { Description = "The project directory (default: the current directory)." });
        command.Options.Add(target.Client);
        command.Options.Add(target.Project);
        return target;
    }

    private static (string Client, string Project) Where(ParseResult parse, Target target)
    {
        var client = parse.GetValue(target.Client) ?? "claude-code";
        if (client is not ("claude-code" or "codex" or "generic"))
        {
            throw new IdentityCommands.UsageException($"--client is claude-code, codex or generic, not '{client}'");
        }
        var project = Path.GetFullPath(parse.GetValue(target.Project) ?? Directory.GetCurrentDirectory());
        if (!Directory.Exists(project))
        {
            throw new IdentityCommands.UsageException($"--project {project} is not a directory");
        }
        return (client, project);
    }

    /// <summary>Where the agent key of <paramref name="user"/> on <paramref name="server"/> for <paramref name="project"/> is kept: never inside the project.</summary>
    internal static string KeyFileFor(Uri server, string user, string project)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(project)))[..10];
        return Path.Combine(ConfigPaths.Root(), "agent-keys", $"{user}@{server.Host}_{server.Port}-{Path.GetFileName(project.TrimEnd('/'))}-{hash}.key");
    }

    // ---- setup ----

    private static Command Setup()
    {
        var command = new Command("setup", "Write (or update) this project's MCP configuration to run parley mcp, with an API key of the agent's own kept outside the project. Safe to run again.");
        var target = TargetOptions(command);
        var parleyCommand = new Option<string?>("--command") { Description = "How the agent's client starts parley (default: this parley's own path)." };
        command.Options.Add(parleyCommand);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => IdentityCommands.RunAsync("agent setup", parse.GetValue(common.Json), async () =>
        {
            var (client, project) = Where(parse, target);
            var (server, credentials, _, _) = ClientCommands.Resolve(parse, common);
            if (credentials is null)
            {
                throw new IdentityCommands.UsageException("setup creates an API key for the agent: log in first (--name USER with this machine's device key, or --profile)");
            }
            var bearer = await credentials(new CredentialRequest(false), ct);
            var me = (await IdentityCommands.GetAsync(server, "/api/whoami", bearer, ct))["name"]!.GetValue<string>();
            var keyFile = KeyFileFor(server, me, project);
            var (keyState, keyId) = await EnsureKeyAsync(server, bearer, me, project, keyFile, ct);

            var (command, prefix) = ParleyInvocation(parse.GetValue(parleyCommand));
            var args = new JsonArray(prefix.Concat(["mcp", "--server", server.ToString().TrimEnd('/'), "--key-file", keyFile]).Select(a => (JsonNode)a).ToArray());
            var hook = string.Join(' ', new[] { command }.Concat(prefix).Concat(["inbox", "--hook", "--server", server.ToString().TrimEnd('/'), "--key-file", keyFile]).Select(Quote));
            var changes = new JsonArray();
            var undo = new JsonArray();
            switch (client)
            {
                case "claude-code":
                    var mcpJson = Path.Combine(project, ".mcp.json");
                    changes.Add(Change(mcpJson, UpsertJson(mcpJson, ["mcpServers", ServerName], new JsonObject { ["type"] = "stdio", ["command"] = command, ["args"] = args, ["env"] = new JsonObject() })));
                    undo.Add($"remove \"{ServerName}\" from mcpServers in {mcpJson}");
                    var settings = Path.Combine(project, ".claude", "settings.local.json");
                    changes.Add(Change(settings, UpsertHook(settings, hook)));
                    undo.Add($"remove the UserPromptSubmit hook running 'inbox --hook' from {settings}");
                    break;
                case "codex":
                    var toml = Path.Combine(project, ".codex", "config.toml");
                    changes.Add(Change(toml, UpsertTomlBlock(toml, command, args.Select(a => a!.GetValue<string>()))));
                    undo.Add($"delete the lines from '{CodexBegin}' to '{CodexEnd}' in {toml}");
                    break;
            }
            undo.Add($"parley keys revoke {keyId}   (then delete {keyFile})");
            var entry = new JsonObject { ["command"] = command, ["args"] = args.DeepClone() };
            var result = new JsonObject
            {
                ["client"] = client,
                ["project"] = project,
                ["name"] = me,
                ["server"] = server.ToString().TrimEnd('/'),
                ["key_file"] = keyFile,
                ["key_id"] = keyId,
                ["key"] = keyState,
                ["files"] = changes,
                ["entry"] = entry,
                ["hook"] = hook,
                ["undo"] = undo,
            };
            var text = new StringBuilder();
            text.AppendLine($"agent key for {me}: {keyState} ({keyId}) in {keyFile} (mode 0600, outside the project)");
            foreach (var change in changes)
            {
                text.AppendLine($"{change!["file"]}: {change["change"]}");
            }
            if (client == "generic")
            {
                text.AppendLine("add this MCP server (stdio) to your agent's client:").AppendLine("  " + entry.ToJsonString());
                text.AppendLine("and run this on each prompt to remind it of unread messages:").AppendLine("  " + hook);
            }
            text.AppendLine("check it with: parley agent doctor" + (client == "claude-code" ? "" : " --client " + client) + $" --project {Quote(project)}");
            text.Append("undo:");
            foreach (var step in undo)
            {
                text.AppendLine().Append("  ").Append(step!.GetValue<string>());
            }
            return (result, text.ToString());
        }));
        return command;
    }

    private static JsonObject Change(string file, string change) => new() { ["file"] = file, ["change"] = change };

    // A key file that still works is kept; otherwise a new write-scoped key is made and stored (0600).
    private static async Task<(string State, string Id)> EnsureKeyAsync(Uri server, string? bearer, string me, string project, string keyFile, CancellationToken ct)
    {
        var idFile = Path.ChangeExtension(keyFile, ".json");
        if (File.Exists(keyFile) && File.Exists(idFile))
        {
            try
            {
                var who = await IdentityCommands.GetAsync(server, "/api/whoami", ClientCommands.ReadKeyFile(keyFile), ct);
                if (who["name"]?.GetValue<string>() == me && JsonNode.Parse(File.ReadAllText(idFile))?["id"]?.GetValue<string>() is { } id)
                {
                    return ("reused", id);
                }
            }
            catch (IdentityCommands.CliFailure ex) when (ex.ExitCode == ExitCodes.Authentication)
            {
                // Revoked or expired: make a new one below.
            }
        }
        JsonObject created;
        try
        {
            created = await IdentityCommands.CallAsync(server, HttpMethod.Post, "/api/keys", new { name = KeyName(project), scope = "write" }, bearer, ct);
        }
        catch (IdentityCommands.CliFailure ex) when (ex.ExitCode == ExitCodes.Authentication)
        {
            throw new IdentityCommands.CliFailure($"the hub would not create the agent's key ({ex.Message}); API keys cannot make keys: log in as yourself (--name USER)", ExitCodes.Authentication);
        }
        ConfigPaths.WritePrivateFileAtomically(keyFile, created["key"]!.GetValue<string>() + "\n");
        ConfigPaths.WritePrivateFileAtomically(idFile, new JsonObject { ["id"] = created["id"]!.DeepClone(), ["project"] = project, ["server"] = server.ToString().TrimEnd('/') }.ToJsonString());
        return ("created", created["id"]!.GetValue<string>());
    }

    // Key names are 2-32 of a-z 0-9 _ -: "agent-" and the project directory's name, cleaned.
    private static string KeyName(string project)
    {
        var slug = new string(Path.GetFileName(project.TrimEnd('/')).ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '-').ToArray()).Trim('-');
        var name = "agent-" + (slug.Length > 0 ? slug : "project");
        return name.Length > 32 ? name[..32].TrimEnd('-') : name;
    }

    // This parley: the apphost, or `dotnet parley.dll` when run through the dotnet host.
    private static (string Command, string[] Prefix) ParleyInvocation(string? flag)
    {
        if (flag is { Length: > 0 })
        {
            return (flag, []);
        }
        var process = Environment.ProcessPath ?? "parley";
        return Path.GetFileNameWithoutExtension(process) == "dotnet"
            ? (process, [Path.Combine(AppContext.BaseDirectory, "parley.dll")])
            : (process, []);
    }

    private static string Quote(string arg) => arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=@%+,".Contains(c)) ? arg : "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>Sets <paramref name="path"/>'s JSON value at <paramref name="keys"/>, keeping everything else; returns created, updated or unchanged.</summary>
    internal static string UpsertJson(string file, string[] keys, JsonNode value)
    {
        var root = ReadJsonObject(file, out var existed);
        var node = root;
        foreach (var key in keys[..^1])
        {
            if (node[key] is not JsonObject child)
            {
                node[key] = child = [];
            }
            node = child;
        }
        if (JsonNode.DeepEquals(node[keys[^1]], value))
        {
            return "unchanged";
        }
        var had = node[keys[^1]] is not null;
        node[keys[^1]] = value;
        WriteJson(file, root);
        return !existed ? "created" : had ? "updated" : "added the parley entry";
    }

    // Claude Code's UserPromptSubmit hook: one entry whose command runs `inbox --hook`; replaced, never duplicated.
    private static string UpsertHook(string file, string command)
    {
        var root = ReadJsonObject(file, out var existed);
        if (root["hooks"] is not JsonObject hooks)
        {
            root["hooks"] = hooks = [];
        }
        if (hooks["UserPromptSubmit"] is not JsonArray entries)
        {
            hooks["UserPromptSubmit"] = entries = [];
        }
        var ours = new JsonObject { ["hooks"] = new JsonArray(new JsonObject { ["type"] = "command", ["command"] = command, ["timeout"] = 10 }) };
        var index = entries.Select((e, i) => (e, i)).Where(x => x.e?["hooks"] is JsonArray h && h.Any(c => c?["command"]?.GetValue<string>() is { } text && text.Contains(" inbox --hook", StringComparison.Ordinal))).Select(x => x.i).DefaultIfEmpty(-1).First();
        if (index >= 0 && JsonNode.DeepEquals(entries[index], ours))
        {
            return "unchanged";
        }
        if (index >= 0)
        {
            entries[index] = ours;
        }
        else
        {
            entries.Add(ours);
        }
        WriteJson(file, root);
        return !existed ? "created" : index >= 0 ? "updated" : "added the inbox hook";
    }

    private static string UpsertTomlBlock(string file, string command, IEnumerable<string> args)
    {
        static string S(string s) => JsonSerializer.Serialize(s); // a JSON string is a valid TOML basic string for these characters
        var block = $"{CodexBegin}\n[mcp_servers.{ServerName}]\ncommand = {S(command)}\nargs = [{string.Join(", ", args.Select(S))}]\n{CodexEnd}\n";
        var existed = File.Exists(file);
        var text = existed ? File.ReadAllText(file) : "";
        var start = text.IndexOf(CodexBegin, StringComparison.Ordinal);
        var end = start < 0 ? -1 : text.IndexOf(CodexEnd, start, StringComparison.Ordinal);
        string updated;
        if (start >= 0 && end >= 0)
        {
            var stop = text.IndexOf('\n', end) is var nl and >= 0 ? nl + 1 : text.Length;
            updated = text[..start] + block + text[stop..];
        }
        else
        {
            updated = text + (text.Length > 0 && !text.EndsWith('\n') ? "\n" : "") + block;
        }
        if (updated == text)
        {
            return "unchanged";
        }
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, updated);
        return !existed ? "created" : start >= 0 ? "updated" : "added the parley entry";
    }

    private static JsonObject ReadJsonObject(string file, out bool existed)
    {
        existed = File.Exists(file);
        if (!existed)
        {
            return [];
        }
        try
        {
            return JsonNode.Parse(File.ReadAllText(file), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as JsonObject
                ?? throw new IdentityCommands.CliFailure($"{file} is not a JSON object: fix it, then run setup again");
        }
        catch (JsonException ex)
        {
            throw new IdentityCommands.CliFailure($"{file} is not valid JSON ({ex.Message}): fix it, then run setup again");
        }
    }

    private static void WriteJson(string file, JsonObject root)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        var temporary = $"{file}.{Environment.ProcessId}.tmp";
        File.WriteAllText(temporary, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(temporary, file, overwrite: true);
    }

    // ---- doctor ----

    private static Command Doctor()
    {
        var command = new Command("doctor", "Check the agent's whole chain: the MCP config, the key file, the hub, the key, and a DM that round-trips to the agent's inbox. Exit 1 when a check fails.");
        var target = TargetOptions(command);
        var fromToken = new Option<string?>("--from-token") { Description = "Another user's API key or token to send the test DM (a DM to yourself is refused); default: your own login when it is not the agent's user." };
        command.Options.Add(fromToken);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction(async (parse, ct) =>
        {
            var checks = new List<Check>();
            try
            {
                var (client, project) = Where(parse, target);
                await RunDoctorAsync(parse, common, client, project, parse.GetValue(fromToken), checks, ct);
            }
            catch (IdentityCommands.UsageException ex)
            {
                await Console.Error.WriteLineAsync($"parley agent doctor: {SecretRedactor.Redact(ex.Message)}");
                return ExitCodes.Usage;
            }
            Print(checks, parse.GetValue(common.Json));
            return checks.Exists(c => c.Outcome == Outcome.Fail) ? ExitCodes.Failure : ExitCodes.Ok;
        });
        return command;
    }

    private static async Task RunDoctorAsync(ParseResult parse, ClientCommands.Common common, string client, string project, string? fromToken, List<Check> checks, CancellationToken ct)
    {
        var args = ConfiguredArgs(client, project, checks);
        if (args is null)
        {
            return;
        }
        string? Arg(string flag) => args.IndexOf(flag) is var i and >= 0 && i + 1 < args.Count ? args[i + 1] : null;
        if (Arg("--server") is not { } serverText || Arg("--key-file") is not { } keyFile)
        {
            checks.Add(new Check("config", Outcome.Fail, "the parley entry has no --server or --key-file", "parley agent setup" + (client == "claude-code" ? "" : " --client " + client)));
            return;
        }
        var server = IdentityCommands.ServerUrl(serverText);
        string key;
        try
        {
            key = ClientCommands.ReadKeyFile(keyFile);
            checks.Add(new Check("key file", Outcome.Ok, $"{keyFile} (owner-only)"));
        }
        catch (Exception ex) when (ex is IdentityCommands.UsageException or UnauthorizedAccessException or IOException)
        {
            checks.Add(new Check("key file", Outcome.Fail, ex.Message, ex is UnauthorizedAccessException ? $"chmod 600 {keyFile}" : "parley agent setup (it creates the key)"));
            return;
        }
        if (!await CheckHubAsync(server, checks, ct))
        {
            return;
        }
        string me;
        try
        {
            me = (await IdentityCommands.GetAsync(server, "/api/whoami", key, ct))["name"]!.GetValue<string>();
            checks.Add(new Check("key", Outcome.Ok, $"valid: the agent is {me}"));
        }
        catch (IdentityCommands.CliFailure ex)
        {
            checks.Add(new Check("key", Outcome.Fail, $"the hub refused the agent's key: {ex.Message}", "parley agent setup (it replaces a revoked or expired key)"));
            return;
        }
        await CheckRoundTripAsync(parse, common, server, key, me, fromToken, checks, ct);
    }

    private static List<string>? ConfiguredArgs(string client, string project, List<Check> checks)
    {
        var fix = "parley agent setup" + (client == "claude-code" ? "" : " --client " + client) + $" --project {Quote(project)}";
        if (client == "generic")
        {
            checks.Add(new Check("config", Outcome.Warn, "a generic client's configuration is not known to parley; checking the key setup would have made", fix));
            return null;
        }
        var file = client == "codex" ? Path.Combine(project, ".codex", "config.toml") : Path.Combine(project, ".mcp.json");
        if (!File.Exists(file))
        {
            checks.Add(new Check("config", Outcome.Fail, $"no {file}", fix));
            return null;
        }
        List<string>? args = null;
        if (client == "codex")
        {
            var line = File.ReadLines(file).SkipWhile(l => l != CodexBegin).FirstOrDefault(l => l.StartsWith("args = ", StringComparison.Ordinal));
            args = line is null ? null : JsonSerializer.Deserialize<List<string>>(line["args = ".Length..]);
        }
        else
        {
            try
            {
                args = (JsonNode.Parse(File.ReadAllText(file))?["mcpServers"]?[ServerName]?["args"] as JsonArray)?.Select(a => a!.GetValue<string>()).ToList();
            }
            catch (JsonException ex)
            {
                checks.Add(new Check("config", Outcome.Fail, $"{file} is not valid JSON: {ex.Message}", $"fix it, then {fix}"));
                return null;
            }
        }
        if (args is null || !args.Contains("mcp"))
        {
            checks.Add(new Check("config", Outcome.Fail, $"{file} has no {ServerName} entry running parley mcp", fix));
            return null;
        }
        checks.Add(new Check("config", Outcome.Ok, $"{file}: {ServerName} runs parley mcp"));
        return args;
    }

    // The agent's socket (kind agent) joins its inbox; another user's DM must arrive there within 5 s, and is acked.
    private static async Task CheckRoundTripAsync(ParseResult parse, ClientCommands.Common common, Uri server, string key, string me, string? fromToken, List<Check> checks, CancellationToken ct)
    {
        var sender = fromToken;
        if (sender is null)
        {
            var (_, credentials, _, _) = ClientCommands.Resolve(parse, common);
            var own = credentials is null ? null : await TryAsync<string>(() => credentials(new CredentialRequest(false), ct).AsTask());
            if (own is not null && await TryAsync<JsonObject>(async () => await IdentityCommands.GetAsync(server, "/api/whoami", own, ct)) is { } who && who["name"]?.GetValue<string>() != me)
            {
                sender = own;
            }
        }
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(TimeSpan.FromSeconds(20));
        try
        {
            await using var agent = new ParleyClient(new ParleyClientOptions { Server = server, Credentials = (_, _) => ValueTask.FromResult<string?>(key), ClientKind = "agent" });
            await agent.StartAsync(bound.Token);
            var inbox = "user:" + me;
            await ClientCommands.JoinOrThrowAsync(agent, inbox, since: null, null, bound.Token);
            var unread = (await ClientCommands.RequestAsync(agent, inbox, "inbox", new { limit = 500 }, bound.Token, join: false)).GetProperty("messages").GetArrayLength();
            if (sender is null)
            {
                checks.Add(new Check("dm", Outcome.Warn, $"the agent's inbox answers ({unread} unread); no other user to send a test DM from (a DM to yourself is refused)", "parley agent doctor --from-token <another user's key>"));
                return;
            }
            await using var from = new ParleyClient(new ParleyClientOptions { Server = server, Credentials = (_, _) => ValueTask.FromResult<string?>(sender), ClientKind = "cli" });
            await from.StartAsync(bound.Token);
            var clock = Stopwatch.StartNew();
            var sent = await ClientCommands.RequestAsync(from, "hub:lobby", "dm", new { to = me, body = "parley agent doctor: round-trip check (safe to ignore)", priority = "now" }, bound.Token, join: false);
            var id = sent.GetProperty("id").GetString();
            await foreach (var message in agent.Messages.ReadAllAsync(bound.Token))
            {
                if (message.Topic == inbox && message.Event == "dm" && message.Payload.GetProperty("id").GetString() == id)
                {
                    break;
                }
            }
            var rtt = clock.Elapsed;
            await ClientCommands.RequestAsync(agent, inbox, "ack", new { ids = new[] { id } }, bound.Token, join: false);
            checks.Add(new Check("dm", Outcome.Ok, $"a test DM reached the agent's inbox in {rtt.TotalMilliseconds:0} ms and was acked ({unread} other unread)"));
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            checks.Add(new Check("dm", Outcome.Fail, "the test DM did not reach the agent's inbox within 20 s", "parley doctor; parley status"));
        }
        catch (Exception ex) when (ex is IdentityCommands.CliFailure or ParleyClientException)
        {
            checks.Add(new Check("dm", Outcome.Fail, $"the DM round trip failed: {SecretRedactor.Redact(ex.Message)}", "check the key's scope (parley keys list): the agent needs write and its user:NAME topic"));
        }
    }

    private static async Task<T?> TryAsync<T>(Func<Task<T?>> run) where T : class
    {
        try
        {
            return await run();
        }
        catch (Exception ex) when (ex is IdentityCommands.CliFailure or CredentialUnavailableException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            return null;
        }
    }
}
