using Parley.Hub.Lobby;

namespace Parley.Identity;

public static partial class IdentityLobbyCommands
{
    // group.* : the /api/groups calls as lobby pushes; "group" is the name, with or without '@'.
    private static void RegisterGroups(LobbyChannel lobby, IdentityService identity)
    {
        lobby.Register("group.list", async (caller, _, ct) =>
        {
            var groups = await identity.ListGroupsAsync(caller, ct);
            return w => IdentityJson.WriteArray(w, "groups", groups, IdentityJson.WriteGroup);
        });
        lobby.Register("group.show", async (caller, p, ct) =>
        {
            var details = await identity.GetGroupAsync(caller, Text(p, "group"), ct);
            return w => IdentityJson.WriteGroupDetails(w, details);
        });
        lobby.Register("group.create", async (caller, p, ct) =>
        {
            var group = await identity.CreateGroupAsync(caller, Text(p, "group"), ct);
            var details = await identity.GetGroupAsync(caller, group.Name, ct);
            return w => IdentityJson.WriteGroupDetails(w, details);
        });
        lobby.Register("group.delete", (caller, p, ct) => identity.DeleteGroupAsync(caller, Text(p, "group"), ct));
        lobby.Register("group.add_member", (caller, p, ct) => identity.AddGroupMemberAsync(caller, Text(p, "group"), Text(p, "user"), Flag(p, "lead"), ct));
        lobby.Register("group.remove_member", (caller, p, ct) => identity.RemoveGroupMemberAsync(caller, Text(p, "group"), Text(p, "user"), ct));
    }
}
