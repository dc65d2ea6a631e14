using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Parley.Cli.Commands;

/// <summary>
/// <c>parley tasks list|create|claim|release|complete|watch</c>: the task board of the hub (<c>tasks:hub</c>)
/// or of a channel (<c>--board ops</c> is <c>tasks:ops</c>); docs/cli.md, docs/protocol.md §13. A lost claim exits 6.
/// </summary>
internal static class TaskCommands
{
    public static Command Create()
    {
        var tasks = new Command("tasks", "A shared task board (the hub's, or a channel's with --board): list, create, claim, release, complete, watch.");
        tasks.Subcommands.Add(List());
        tasks.Subcommands.Add(New());
        foreach (var (verb, description) in new[]
        {
            ("claim", "Claim an open task (atomic: of racing claims one wins; the others exit 6)."),
            ("release", "Give a task you claimed back to the board."),
            ("complete", "Mark a task you claimed done, with an optional --result."),
        })
        {
            tasks.Subcommands.Add(Transition(verb, description));
        }
        tasks.Subcommands.Add(Watch());
        return tasks;
    }

    private static Option<string?> BoardOption() => new("--board") { Description = "The board: hub (default) or a channel's name, e.g. ops for tasks:ops." };

    private static string Topic(string? board) => board is null ? "tasks:hub" : board.StartsWith("tasks:", StringComparison.Ordinal) ? board : "tasks:" + board;

    private static Command List()
    {
        var command = new Command("list", "List the board's tasks, optionally filtered.");
        var board = BoardOption();
        var status = new Option<string?>("--status") { Description = "open, claimed or done." };
        var assignee = new Option<string?>("--assignee") { Description = "Only tasks meant for this user." };
        var priority = new Option<string?>("--priority") { Description = "now, next or low." };
        var tag = new Option<string?>("--tag") { Description = "Only tasks with this tag." };
        command.Options.Add(board);
        command.Options.Add(status);
        command.Options.Add(assignee);
        command.Options.Add(priority);
        command.Options.Add(tag);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("tasks list", parse, common, async (client, json) =>
        {
            var listed = await ClientCommands.RequestAsync(client, Topic(parse.GetValue(board)), "list", new
            {
                status = parse.GetValue(status),
                assignee = parse.GetValue(assignee),
                priority = parse.GetValue(priority),
                tag = parse.GetValue(tag),
            }, ct);
            if (json)
            {
                Console.WriteLine(listed.GetRawText());
                return ExitCodes.Ok;
            }
            var all = listed.GetProperty("tasks");
            if (all.GetArrayLength() == 0)
            {
                Console.WriteLine("(no tasks)");
            }
            foreach (var task in all.EnumerateArray())
            {
                Console.WriteLine(Line(task));
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command New()
    {
        var command = new Command("create", "Put a task on the board.");
        var title = new Argument<string>("title") { Description = "What needs doing (1-200 characters)." };
        var board = BoardOption();
        var body = new Option<string?>("--body") { Description = "Details (up to 8 KiB)." };
        var assignee = new Option<string?>("--assignee") { Description = "Who it is meant for (anyone may still claim it)." };
        var priority = new Option<string?>("--priority") { Description = "now, next (default) or low." };
        var tags = new Option<string[]>("--tag") { Description = "A tag (a-z 0-9 _ -); repeat for more.", AllowMultipleArgumentsPerToken = false };
        command.Arguments.Add(title);
        command.Options.Add(board);
        command.Options.Add(body);
        command.Options.Add(assignee);
        command.Options.Add(priority);
        command.Options.Add(tags);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("tasks create", parse, common, async (client, json) =>
        {
            var task = await ClientCommands.RequestAsync(client, Topic(parse.GetValue(board)), "create", new
            {
                title = parse.GetValue(title),
                body = parse.GetValue(body),
                assignee = parse.GetValue(assignee),
                priority = parse.GetValue(priority),
                tags = parse.GetValue(tags) is { Length: > 0 } t ? t : null,
            }, ct);
            Console.WriteLine(json ? task.GetRawText() : $"created {task.GetProperty("id").GetString()}: {Line(task)}");
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Transition(string verb, string description)
    {
        var command = new Command(verb, description);
        var id = new Argument<string>("id") { Description = "The task's id (t-…)." };
        var board = BoardOption();
        var result = new Option<string?>("--result") { Description = "What came of it (complete only; up to 8 KiB)." };
        command.Arguments.Add(id);
        command.Options.Add(board);
        if (verb == "complete")
        {
            command.Options.Add(result);
        }
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("tasks " + verb, parse, common, async (client, json) =>
        {
            var task = await ClientCommands.RequestAsync(client, Topic(parse.GetValue(board)), verb, new { id = parse.GetValue(id), result = parse.GetValue(result) }, ct);
            Console.WriteLine(json ? task.GetRawText() : Line(task));
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Watch()
    {
        var command = new Command("watch", "Print the board, then every change until Ctrl-C (status on stderr).");
        var board = BoardOption();
        command.Options.Add(board);
        var common = ClientCommands.CommonOptions(command);
        command.SetAction((parse, ct) => ClientCommands.RunClientAsync("tasks watch", parse, common, async (client, json) =>
        {
            var topic = Topic(parse.GetValue(board));
            return await ClientCommands.FollowAsync(client, "tasks watch", topic, since: null, null, "task_change",
                joined => PrintBoard(joined.Response, json), change => PrintChange(change, json),
                StateCommands.ReprintOnRejoin("board", snapshot => PrintBoard(snapshot, json)), ct);
        }));
        return command;
    }

    private static void PrintBoard(JsonElement board, bool json)
    {
        if (json)
        {
            ClientCommands.PrintTypedLine(board, "snapshot");
            return;
        }
        foreach (var task in board.GetProperty("tasks").EnumerateArray())
        {
            Console.WriteLine(Line(task));
        }
    }

    private static void PrintChange(JsonElement change, bool json)
    {
        if (json)
        {
            ClientCommands.PrintTypedLine(change, "change");
            return;
        }
        Console.WriteLine($"[{change.GetProperty("revision").GetInt64()}] {change.GetProperty("op").GetString()} by {change.GetProperty("task").GetProperty("updated_by").GetString()}: {Line(change.GetProperty("task"))}");
    }

    private static string Line(JsonElement task)
    {
        var status = task.GetProperty("status").GetString();
        var who = task.GetProperty("claimed_by").ValueKind == JsonValueKind.String ? " by " + task.GetProperty("claimed_by").GetString() : "";
        var tags = string.Join(" ", task.GetProperty("tags").EnumerateArray().Select(t => "#" + t.GetString()));
        return $"{task.GetProperty("id").GetString()}  [{task.GetProperty("priority").GetString()}] {status}{who}  {task.GetProperty("title").GetString()}{(tags.Length > 0 ? "  " + tags : "")}";
    }
}
