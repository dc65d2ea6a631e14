using System.CommandLine;
using System.Text;
using System.Text.Json;
using Parley.Cli.Terminals;
using Parley.Client;
using Parley.Terminal.Pty;

namespace Parley.Cli.Commands;

/// <summary>
/// <c>parley attach ID</c>: mirrors a live terminal session into this terminal (docs/cli.md §Terminals). It joins
/// <c>term:&lt;id&gt;</c> as a viewer, writes the tail of the output (up to <c>--backfill</c> bytes, the seam the join
/// reply gives), then every live output frame; a <c>resync</c> is filled in with <c>fetch_output</c>, so the screen
/// is never silently short. Keystrokes go to the session when its owner allowed this user; Ctrl-] detaches.
/// Without a hub configured, the session is looked up in this machine's registry of locally hosted runs.
/// </summary>
internal static class AttachCommand
{
    private const byte DetachKey = 0x1d; // Ctrl-]
    private const int FetchBytes = 256 * 1024;

    public static Command Create()
    {
        var command = new Command("attach", "Mirror a live terminal session (parley run) here; type into it when its owner allowed you. Ctrl-] detaches.");
        var id = new Argument<string>("id") { Description = "The session id (parley run prints it; GET /api/terminals lists them)." };
        command.Arguments.Add(id);
        return Configure(command, "parley attach", parse => parse.GetValue(id)!, resolve: null);
    }

    /// <summary><c>parley fleet attach NAME</c>: the same mirror of the terminal session a fleet instance runs on now.</summary>
    public static Command CreateForInstance()
    {
        var command = new Command("attach", "Mirror the terminal of an instance created with --terminal; admins can type into it. Ctrl-] detaches.");
        var name = new Argument<string>("name") { Description = "The instance." };
        command.Arguments.Add(name);
        return Configure(command, "parley fleet attach", parse => parse.GetValue(name)!, async (client, instance, ct) =>
        {
            var reply = await ClientCommands.RequestAsync(client, "hub:lobby", "fleet.get", new { name = instance }, ct, join: false);
            return reply.TryGetProperty("terminal_id", out var terminal) && terminal.ValueKind == JsonValueKind.String
                ? terminal.GetString()!
                : throw new IdentityCommands.CliFailure(reply.TryGetProperty("terminal", out var hasTerminal) && hasTerminal.ValueKind == JsonValueKind.True
                    ? $"instance {instance} has not started yet: start it first (parley fleet start {instance})"
                    : $"instance {instance} does not run under a terminal: its output is in parley fleet logs {instance} (create instances with --terminal to watch them live)", ExitCodes.Failure);
        });
    }

    // `what` names the argument (a session id, or an instance that `resolve` turns into its session id over the hub).
    private static Command Configure(Command command, string verb, Func<ParseResult, string> what, Func<ParleyClient, string, CancellationToken, Task<string>>? resolve)
    {
        var backfill = new Option<int?>("--backfill") { Description = "How much of the output so far to show first, in bytes (default 262144; 0 = only what comes next)." };
        var readOnly = new Option<bool>("--read-only") { Description = "Never send keystrokes, even when allowed." };
        command.Options.Add(backfill);
        command.Options.Add(readOnly);
        var common = ClientCommands.CommonOptions(command, json: false);
        command.SetAction(async (parse, ct) =>
        {
            var session = what(parse);
            var tail = parse.GetValue(backfill) ?? FetchBytes;
            if (tail < 0)
            {
                Console.Error.WriteLine($"{verb}: --backfill must be 0 or more bytes");
                return ExitCodes.Usage;
            }
            try
            {
                Uri server;
                Func<CredentialRequest, CancellationToken, ValueTask<string?>>? credentials;
                if (ClientCommands.IsHubConfigured(parse, common) || resolve is not null)
                {
                    (server, credentials, _, _) = ClientCommands.Resolve(parse, common);
                }
                else
                {
                    var local = (await LocalSessionRegistry.ListAsync(ct)).FirstOrDefault(e => e.Id == session);
                    if (local is null)
                    {
                        Console.Error.WriteLine($"{verb}: no session {session} runs on this machine ({LocalSessionRegistry.FilePath}); for a hub's session pass --server (or set PARLEY_SERVER or a profile)");
                        return ExitCodes.NotFound;
                    }
                    (server, credentials) = (new Uri(new Uri(local.Url).GetLeftPart(UriPartial.Authority)), null);
                }
                await using var client = new ParleyClient(new ParleyClientOptions { Server = server, Credentials = credentials, ClientKind = "cli", MessageBuffer = 100_000 });
                await client.StartAsync(ct);
                if (resolve is not null)
                {
                    session = await resolve(client, session, ct);
                }
                return await MirrorAsync(client, verb, session, tail, parse.GetValue(readOnly), ct);
            }
            catch (IdentityCommands.UsageException ex)
            {
                Console.Error.WriteLine($"{verb}: {ex.Message}");
                return ExitCodes.Usage;
            }
            catch (ParleyClientException ex)
            {
                Console.Error.WriteLine($"{verb}: {ex.Message}");
                return ex.Message.Contains("auth_failed", StringComparison.Ordinal) ? ExitCodes.Authentication : ExitCodes.Failure;
            }
            catch (Exception ex) when (ex is IdentityCommands.CliFailure or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"{verb}: {ex.Message}");
                return ex is IdentityCommands.CliFailure failure ? failure.ExitCode : ExitCodes.Failure;
            }
        });
        return command;
    }

    private static async Task<int> MirrorAsync(ParleyClient client, string verb, string id, int tail, bool readOnly, CancellationToken ct)
    {
        var topic = "term:" + id;
        var joined = await client.JoinAsync(topic, cancellationToken: ct);
        if (!joined.IsOk)
        {
            Console.Error.WriteLine($"{verb}: cannot watch {id}: {joined.Reason} {(joined.Response.TryGetProperty("detail", out var d) ? d.GetString() : "")}".TrimEnd());
            return joined.Reason switch
            {
                "session_not_found" => ExitCodes.NotFound,
                "forbidden" or "unauthorized" => ExitCodes.Authentication,
                _ => ExitCodes.Failure,
            };
        }
        var reply = joined.Response;
        var canInput = !readOnly && reply.GetProperty("can_input").GetBoolean();
        var seam = reply.GetProperty("output_size").GetInt64();
        var tty = LocalTerminal.IsTerminal(LocalTerminal.StdIn);
        using var stdout = TerminalCommands.StandardOutput();
        var raw = tty ? LocalTerminal.EnterRaw(LocalTerminal.StdIn) : null;
        using var detach = CancellationTokenSource.CreateLinkedTokenSource(ct);
        void Say(string text)
        {
            stdout.Write(Encoding.UTF8.GetBytes($"\r\n[parley attach: {text}]\r\n"));
            stdout.Flush();
        }
        try
        {
            Say($"{reply.GetProperty("name").GetString()} ({string.Join(' ', reply.GetProperty("command").EnumerateArray().Select(c => c.GetString()))}) by {reply.GetProperty("owner").GetString()}, "
                + $"{reply.GetProperty("cols").GetInt32()}x{reply.GetProperty("rows").GetInt32()}; {(canInput ? "you can type" : "read-only")}; Ctrl-] detaches");
            // The tail up to the seam, then live frames: they start exactly at the seam.
            var offset = Math.Max(0, seam - tail);
            offset = await CopyRangeAsync(client, topic, offset, seam, stdout, detach.Token);
            if (reply.TryGetProperty("ended_at", out var ended) && ended.ValueKind == JsonValueKind.Number)
            {
                Say(Ended(reply));
                return ExitCodes.Ok;
            }
            if (tty)
            {
                new Thread(() => ForwardKeys(client, topic, () => canInput, Say, detach)) { IsBackground = true, Name = "parley-attach stdin" }.Start();
            }
            await foreach (var message in client.Messages.ReadAllAsync(detach.Token))
            {
                if (message.Topic != topic)
                {
                    continue;
                }
                switch (message.Event)
                {
                    case "output" when message.IsBinary:
                        stdout.Write(message.Binary.Span);
                        stdout.Flush();
                        offset += message.Binary.Length;
                        break;
                    case "resync":
                        // This viewer fell behind and frames were dropped: fill in the gap, then live output resumes.
                        offset = await CopyRangeAsync(client, topic, offset, message.Payload.GetProperty("offset").GetInt64(), stdout, detach.Token);
                        break;
                    case "can_input":
                        canInput = !readOnly && message.Payload.GetProperty("can_input").GetBoolean();
                        Say(canInput ? "the owner let you type" : "read-only now");
                        break;
                    case "exit":
                        Say(Ended(message.Payload));
                        return ExitCodes.Ok;
                }
            }
            Say("the connection to the hub closed");
            return ExitCodes.Failure;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            Say("detached");
            return ExitCodes.Ok;
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Ok;
        }
        catch (TerminalCommands.ReaderGoneException)
        {
            return ExitCodes.Ok; // `parley attach ID | head`: whoever read the mirror stopped
        }
        finally
        {
            raw?.Restore();
        }
    }

    // One wording whether the session ended while watched or before the join: the join reply and the exit event carry the same fields.
    private static string Ended(JsonElement payload)
    {
        static int? Number(JsonElement p, string name) => p.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;
        return (Number(payload, "exit_code"), Number(payload, "signal")) switch
        {
            (_, { } signal) => $"the session ended (killed by signal {signal})",
            ({ } code, null) => $"the session ended (exit {code})",
            _ => "the session ended (its command's exit was not recorded)",
        };
    }

    // Writes output [from, to) from the hub's copy; returns where it stopped (to).
    private static async Task<long> CopyRangeAsync(ParleyClient client, string topic, long from, long to, Stream stdout, CancellationToken ct)
    {
        while (from < to)
        {
            var reply = await client.PushAsync(topic, "fetch_output", new { offset = from, limit = (int)Math.Min(FetchBytes, to - from) }, ct);
            if (!reply.IsOk || reply.Binary.IsEmpty)
            {
                throw new ParleyClientException($"fetch_output at {from} failed: {reply.Reason ?? "empty"}");
            }
            stdout.Write(reply.Binary.Span);
            from += reply.Binary.Length;
        }
        stdout.Flush();
        return from;
    }

    // Raw keystrokes: Ctrl-] detaches; the rest goes to the session when allowed (else it is dropped, and said once).
    private static void ForwardKeys(ParleyClient client, string topic, Func<bool> canInput, Action<string> say, CancellationTokenSource detach)
    {
        var buffer = new byte[4096];
        var toldReadOnly = false;
        while (!detach.IsCancellationRequested)
        {
            int n;
            try
            {
                n = LocalTerminal.Read(LocalTerminal.StdIn, buffer);
            }
            catch (IOException)
            {
                return;
            }
            if (n <= 0)
            {
                return;
            }
            var keys = buffer.AsSpan(0, n);
            // Read-only, Ctrl-C has nothing to interrupt here: it detaches too.
            var stop = canInput() ? keys.IndexOf(DetachKey) : keys.IndexOfAny(DetachKey, (byte)0x03);
            if (stop >= 0)
            {
                keys = keys[..stop];
            }
            if (!keys.IsEmpty)
            {
                if (canInput())
                {
                    var reply = client.PushAsync(topic, "input", new { data_b64 = Convert.ToBase64String(keys) }).GetAwaiter().GetResult();
                    if (!reply.IsOk)
                    {
                        say($"input refused: {reply.Reason}");
                    }
                }
                else if (!toldReadOnly)
                {
                    say("read-only: the owner has not allowed you to type (Ctrl-] or Ctrl-C detaches)");
                    toldReadOnly = true;
                }
            }
            if (stop >= 0)
            {
                detach.Cancel();
                return;
            }
        }
    }
}
