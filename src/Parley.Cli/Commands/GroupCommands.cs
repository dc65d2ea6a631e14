using System.CommandLine;
using System.Text.Json.Nodes;
using static Parley.Cli.Commands.AdminCommands;

namespace Parley.Cli.Commands;

/// <summary>
/// <c>parley groups</c>: named groups of users (<c>@reviewers</c>, <c>@team/backend</c>) over the HTTP API
/// (docs/cli.md). Credentials as for <see cref="ClientCommands"/>; the hub decides who may manage which group.
/// </summary>
internal static class GroupCommands
{
    public static Command Create()
    {
        var groups = new Command("groups", "Groups of users (@name, nested as @team/backend): list, create, show, delete, add, remove.");
        var name = new Argument<string>("group") { Description = "The group, with or without '@', e.g. @team/backend." };
        var user = new Argument<string>("user") { Description = "The user." };
        var lead = new Option<bool>("--lead") { Description = "Make the member a lead: leads manage the group's members and create groups below it." };

        groups.Subcommands.Add(Verb("list", "List every group with its member count.", _ => { },
            _ => (HttpMethod.Get, "/api/groups", null),
            r => Lines(r, "groups", g => $"@{g["name"]}  {g["member_count"]} member(s)")));
        groups.Subcommands.Add(Verb("create", "Create a group (top level: admins; below a group: its leads too). The parent must exist.", c => c.Arguments.Add(name),
            p => (HttpMethod.Post, "/api/groups", new { name = Bare(p.GetValue(name)!) }),
            r => $"created @{r["name"]}"));
        groups.Subcommands.Add(Verb("show", "Show a group: members (leads marked), subgroups and every user it reaches.", c => c.Arguments.Add(name),
            p => (HttpMethod.Get, GroupPath(p.GetValue(name)!), null),
            Show));
        groups.Subcommands.Add(Verb("delete", "Delete a group (admins); one with subgroups is refused: delete those first.", c => c.Arguments.Add(name),
            p => (HttpMethod.Delete, GroupPath(p.GetValue(name)!), null),
            _ => "deleted"));
        groups.Subcommands.Add(Verb("add", "Add a user to a group, or change their lead flag.", c => { c.Arguments.Add(name); c.Arguments.Add(user); c.Options.Add(lead); },
            p => (HttpMethod.Post, GroupPath(p.GetValue(name)!) + "/members", new { user = p.GetValue(user), lead = p.GetValue(lead) }),
            r => r["lead"]!.GetValue<bool>() ? "added (lead)" : "added"));
        groups.Subcommands.Add(Verb("remove", "Remove a user from a group (their subgroup memberships stay).", c => { c.Arguments.Add(name); c.Arguments.Add(user); },
            p => (HttpMethod.Delete, $"{GroupPath(p.GetValue(name)!)}/members/{Escape(p.GetValue(user)!)}", null),
            _ => "removed"));
        return groups;
    }

    private static string Bare(string group) => group.StartsWith('@') ? group[1..] : group;

    // The whole name is one path segment: its '/' travels as %2F.
    private static string GroupPath(string group) => "/api/groups/" + Escape(Bare(group));

    private static string Show(JsonObject r)
    {
        var members = r["members"]!.AsArray().Select(m => m!["name"] + (m["lead"]!.GetValue<bool>() ? " (lead)" : "")).ToList();
        var subgroups = r["subgroups"]!.AsArray().Select(s => "@" + s).ToList();
        var expanded = r["expanded"]!.AsArray().Select(u => u!.GetValue<string>()).ToList();
        return $"@{r["name"]}, created by {r["created_by"]} at {DateTimeOffset.FromUnixTimeMilliseconds(r["created_at"]!.GetValue<long>()):u}" +
            $"\n{members.Count} member(s): {(members.Count > 0 ? string.Join(", ", members) : "-")}" +
            $"\nsubgroups: {(subgroups.Count > 0 ? string.Join(", ", subgroups) : "-")}" +
            $"\nreaches {expanded.Count} user(s): {(expanded.Count > 0 ? string.Join(", ", expanded) : "-")}";
    }
}
