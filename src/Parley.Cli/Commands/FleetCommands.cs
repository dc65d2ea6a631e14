using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using static Parley.Cli.Commands.AdminCommands;

namespace Parley.Cli.Commands;

/// <summary>
/// <c>parley fleet</c>: instances the hub runs and watches (docs/fleet.md), over the HTTP API. Credentials as
/// for <see cref="ClientCommands"/>; anyone may list, admins run lifecycle operations. Exit codes: 3 for 401/403,
/// 4 for an unknown instance, 1 for other refusals.
/// </summary>
internal static class FleetCommands
{
    public static Command Create()
    {
        var fleet = new Command("fleet", "Supervised instances: add, list, show, start, stop, restart, archive, unarchive, rm, clone, logs, attach, watch.");
        var name = new Argument<string>("name") { Description = "The instance name (1-63 of a-z 0-9 _ -)." };
        fleet.Subcommands.Add(Add(name));
        var all = new Option<bool>("--all") { Description = "Include archived instances." };
        fleet.Subcommands.Add(Verb("list", "List instances with their status.", c => c.Options.Add(all),
            p => (HttpMethod.Get, "/api/instances" + (p.GetValue(all) ? "?include_archived=true" : ""), null),
            r => Lines(r, "instances", Line)));
        fleet.Subcommands.Add(Verb("show", "Show one instance.", c => c.Arguments.Add(name),
            p => (HttpMethod.Get, Path(p.GetValue(name)!), null),
            r => Line(r)));
        foreach (var (verb, description) in new[]
        {
            ("start", "Start an instance (it is started again whenever the hub starts, until stopped)."),
            ("stop", "Stop an instance: SIGTERM, then SIGKILL after the grace period."),
            ("restart", "Stop an instance if it runs, then start it."),
            ("archive", "Stop an instance and hide it from default listings."),
            ("unarchive", "Bring an archived instance back (stopped)."),
        })
        {
            fleet.Subcommands.Add(Verb(verb, description, c => c.Arguments.Add(name),
                p => (HttpMethod.Post, $"{Path(p.GetValue(name)!)}/{verb}", null),
                r => Line(r)));
        }
        fleet.Subcommands.Add(Verb("rm", "Delete a stopped instance (its log directory stays).", c => c.Arguments.Add(name),
            p => (HttpMethod.Delete, Path(p.GetValue(name)!), null),
            r => $"deleted {r["name"]}"));
        var newName = new Argument<string>("new-name") { Description = "The clone's name." };
        fleet.Subcommands.Add(Verb("clone", "Create a stopped copy of an instance under a new name.", c => { c.Arguments.Add(name); c.Arguments.Add(newName); },
            p => (HttpMethod.Post, $"{Path(p.GetValue(name)!)}/clone", new { name = p.GetValue(newName) }),
            r => "created " + Line(r)));
        fleet.Subcommands.Add(Logs());
        fleet.Subcommands.Add(AttachCommand.CreateForInstance());
        fleet.Subcommands.Add(FleetWatchCommand.Create());
        return fleet;
    }

    // parley fleet logs NAME [--tail N] [-f]: the newest lines over REST, or backlog then live over logs:NAME.
    private static Command Logs()
    {
        var command = new Command("logs", "Print an instance's newest log lines; -f follows them live (backlog, then new lines, across hub restarts; rotations are marked on stderr).");
        var name = new Argument<string>("name") { Description = "The instance." };
        var tail = new Option<int?>("--tail") { Description = "How many of the newest lines (default 100, at most 1000)." };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new lines until Ctrl-C." };
        command.Arguments.Add(name);
        command.Options.Add(tail);
        command.Options.Add(follow);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction(async (parse, ct) =>
        {
            var instance = parse.GetValue(name)!;
            var count = parse.GetValue(tail) ?? 100;
            if (!parse.GetValue(follow))
            {
                return await IdentityCommands.RunAsync("fleet logs", parse.GetValue(common.Json), async () =>
                {
                    var (server, credentials, _, _) = ClientCommands.Resolve(parse, common);
                    var bearer = credentials is null ? null : await credentials(new Parley.Client.CredentialRequest(false), ct);
                    var reply = await IdentityCommands.GetAsync(server, $"{Path(instance)}/logs?tail={count}", bearer, ct);
                    return (reply, string.Join(Environment.NewLine, reply["lines"]!.AsArray().Select(l => l!.GetValue<string>())));
                });
            }
            return await ClientCommands.RunClientAsync("fleet logs", parse, common, async (client, json) =>
            {
                // Lines start with their receive time (24 characters): after a rejoin, backlog lines older than the
                // last printed one, or printed already with the same time, are skipped.
                var lastStamp = "";
                var atLastStamp = new HashSet<string>(StringComparer.Ordinal);
                void Print(JsonElement payload)
                {
                    foreach (var line in payload.GetProperty("lines").EnumerateArray().Select(l => l.GetString()!))
                    {
                        var stamp = line.Length >= 24 ? line[..24] : line;
                        var order = string.CompareOrdinal(stamp, lastStamp);
                        if (order < 0 || (order == 0 && !atLastStamp.Add(line)))
                        {
                            continue;
                        }
                        if (order > 0)
                        {
                            lastStamp = stamp;
                            atLastStamp.Clear();
                            atLastStamp.Add(line);
                        }
                        Console.WriteLine(json ? new JsonObject { ["instance"] = instance, ["line"] = line }.ToJsonString() : line);
                    }
                }
                return await ClientCommands.FollowAsync(client, "fleet logs", "logs:" + instance, since: null, new JsonObject { ["backlog"] = count },
                    ["backlog", "lines", "rotated"], _ => { }, (kind, payload) =>
                    {
                        if (kind == "rotated")
                        {
                            Console.Error.WriteLine($"parley: {instance}'s log rotated");
                            return;
                        }
                        Print(payload);
                    },
                    (rejoined, _) => Console.Error.WriteLineAsync($"parley: rejoined {rejoined.Topic}; printing what is new"), ct);
            });
        });
        return command;
    }

    private static Command Add(Argument<string> name)
    {
        var command = new Argument<string[]>("command") { Description = "The program and its arguments, after --, e.g. -- sh -c 'exec my-agent'.", Arity = ArgumentArity.OneOrMore };
        var cwd = new Option<string?>("--cwd") { Description = "Absolute working directory on the hub's machine (default: the instance's directory under the data dir)." };
        var env = new Option<string[]>("--env") { Description = "An environment variable K=V (repeatable). Values stay on the hub: listings show keys only.", AllowMultipleArgumentsPerToken = false };
        var restart = new Option<string?>("--restart") { Description = "never (default), on-failure or always." };
        var port = new Option<int?>("--port") { Description = "The port the instance listens on (shown to watchers)." };
        var health = new Option<string?>("--health-url") { Description = "An http(s) URL that answers 2xx while the instance is healthy." };
        var start = new Option<bool>("--start") { Description = "Start it right away." };
        var terminal = new Option<bool>("--terminal") { Description = "Run it under a terminal the hub hosts: watch it live (parley fleet attach, /terminals) and let admins type into it." };
        return Verb("add", "Create an instance (admins): parley fleet add NAME [options] -- CMD ARGS...",
            c =>
            {
                c.Arguments.Add(name);
                c.Arguments.Add(command);
                c.Options.Add(cwd);
                c.Options.Add(env);
                c.Options.Add(restart);
                c.Options.Add(port);
                c.Options.Add(health);
                c.Options.Add(start);
                c.Options.Add(terminal);
            },
            p =>
            {
                var words = p.GetValue(command)!;
                var variables = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var pair in p.GetValue(env) ?? [])
                {
                    var eq = pair.IndexOf('=', StringComparison.Ordinal);
                    if (eq <= 0)
                    {
                        throw new IdentityCommands.UsageException($"--env '{pair[..Math.Max(0, eq < 0 ? pair.Length : eq)]}…' must be K=V");
                    }
                    variables[pair[..eq]] = pair[(eq + 1)..];
                }
                return (HttpMethod.Post, "/api/instances", new
                {
                    name = p.GetValue(name),
                    command = words[0],
                    args = words[1..],
                    cwd = p.GetValue(cwd) is { } d ? System.IO.Path.GetFullPath(d) : null,
                    env = variables,
                    port = p.GetValue(port),
                    health_url = p.GetValue(health),
                    restart = p.GetValue(restart) ?? "never",
                    terminal = p.GetValue(terminal),
                    start = p.GetValue(start),
                });
            },
            r => "created " + Line(r));
    }

    private static string Path(string name) => "/api/instances/" + Escape(name);

    private static string Line(JsonNode i) =>
        $"{i["name"]}  {i["status"]}{(i["pid"] is { } pid ? $"  pid {pid}" : "")}{(i["exit_code"] is { } code ? $"  exit {code}" : "")}" +
        $"  restart {i["restart"]} ({i["restarts"]})  {i["command"]} {string.Join(' ', i["args"]!.AsArray().Select(a => a!.GetValue<string>()))}" +
        (i["terminal_id"] is { } term ? $"  terminal {term}" : i["terminal"]?.GetValue<bool>() == true ? "  terminal" : "") +
        (i["archived"]!.GetValue<bool>() ? "  archived" : "");
}
